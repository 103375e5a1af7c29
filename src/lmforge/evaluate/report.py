"""report.md, the plots, and the comparison of a candidate with a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge import gate
from lmforge.evaluate.suite import Suite
from lmforge.gate import Gate


def compare(
    candidate: dict[str, Any], baseline: dict[str, Any], suite: Suite, default_regression: float
) -> dict[str, Any]:
    """Per quality metric both models have: both values, the relative change, and pass/fail
    against the suite's gate (lmforge.gate; regression = how much worse, relative to the
    baseline, in the metric's direction)."""

    def flat(report: dict[str, Any]) -> dict[str, float]:
        return {f"{t}.{m}": v for t, values in report["tasks"].items() for m, v in values.items()}

    result = gate.compare(Gate(suite.gate, default_regression), flat(baseline), flat(candidate))
    rows = [c.to_json() for c in result.checks if c.compared]
    return {"rows": rows, "passed": result.passed}


def _number(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _optional(value: float | None) -> str:
    return "-" if value is None else _number(value)


def markdown(report: dict[str, Any]) -> str:
    model = report["model"]
    lines = [
        f"# Evaluation of {model['ref']}",
        "",
        f"Model sha256: `{model.get('model_sha256')}` · suite: {report['suite']}",
        "",
        "| task | metric | value |",
        "|---|---|---|",
    ]
    for task, metrics in report["tasks"].items():
        for metric, value in metrics.items():
            lines.append(f"| {task} | {metric} | {_number(value)} |")
    lines += ["", "| task | type | data | seconds |", "|---|---|---|---|"]
    for task, details in report["details"].items():
        data = details.get("data", {})
        where = f"{data.get('path', '')} ({str(data.get('sha256', ''))[:12]})"
        lines.append(f"| {task} | {details['type']} | {where} | {details['seconds']:.1f} |")
    for task, details in report["details"].items():
        for sample in details.get("samples", []):
            lines += [
                "",
                f"**{task}** summary: {sample['summary']}",
                f"reference: {sample['reference']}",
            ]
    if comparison := report.get("comparison"):
        verdict = "PASSED" if comparison["passed"] else "FAILED"
        lines += [
            "",
            f"## Against {report['baseline']['model']['ref']}: {verdict}",
            "",
            "| metric | candidate | baseline | change | better | allowed | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in comparison["rows"]:
            change = "-" if row["change"] is None else f"{row['change']:+.2%}"
            allowed = f"{row['max_regression']:.0%}" + "".join(
                f", {bound} {row[bound]:g}"
                for bound in ("min", "max")
                if row.get(bound) is not None
            )
            verdict = "pass" if row["passed"] else f"FAIL ({row['verdict']})"
            lines.append(
                f"| {row['metric']} | {_optional(row['candidate'])} | "
                f"{_optional(row['baseline'])} | {change} | {row['better'] or '-'} | {allowed} | "
                f"{verdict} |"
            )
    return "\n".join(lines) + "\n"


def plots(report: dict[str, Any], directory: Path) -> list[str]:
    """Confusion matrices, robustness ratios, canary exposures and the baseline comparison,
    as PNG files in `directory`; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(directory / name)
        plt.close(fig)
        written.append(name)

    for task, details in report["details"].items():
        safe = task.replace("/", "_")
        if "confusion_matrix" in details:
            counts, labels = details["confusion_matrix"], details["labels"]
            fig, ax = plt.subplots(
                figsize=(1.2 * len(labels) + 2.5, 1.1 * len(labels) + 2), dpi=110
            )
            ax.imshow(counts, cmap="Blues")
            ax.set_xticks(range(len(labels)), [details["settings"]["labels"][k] for k in labels])
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true label")
            darkest = max(max(row) for row in counts)
            for i, row in enumerate(counts):
                for j, n in enumerate(row):
                    colour = "white" if n > darkest / 2 else "black"
                    ax.text(j, i, str(n), ha="center", va="center", color=colour)
            ax.set_title(f"{task}: accuracy {report['tasks'][task]['accuracy']:.3f}")
            save(fig, f"confusion_{safe}.png")
        if details["type"] == "robustness":
            ratios = {k: v for k, v in report["tasks"][task].items() if k.endswith("_ratio")}
            fig, ax = plt.subplots(figsize=(7, 0.35 * len(ratios) + 1.5), dpi=110)
            ax.barh(list(ratios), list(ratios.values()), color="tab:orange")
            ax.axvline(1.0, color="black", lw=1)
            ax.set_xlabel("perturbed / clean")
            ax.set_title(f"{task}: robustness of {details['settings']['of']}")
            save(fig, f"robustness_{safe}.png")
        if details["type"] == "canary_exposure":
            fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
            exposures = [c["exposure"] for c in details["canaries"]]
            ax.bar(range(len(exposures)), exposures, label="inserted canaries")
            ax.axhline(
                report["tasks"][task]["control_exposure_mean"],
                color="tab:green",
                label="never-seen secrets (mean)",
            )
            ax.axhline(
                report["tasks"][task]["secret_space_bits"],
                color="tab:red",
                ls="--",
                label="fully memorised",
            )
            ax.set_xlabel("canary")
            ax.set_ylabel("exposure (bits)")
            ax.legend(fontsize=8)
            save(fig, f"exposure_{safe}.png")
    if (comparison := report.get("comparison")) and any(
        r["change"] is not None for r in comparison["rows"]
    ):
        rows = [r for r in comparison["rows"] if r["change"] is not None]
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.5), dpi=110)
        # Plot "how much better" so that right is always good, whatever the direction.
        gains = [r["change"] if r["better"] == "higher" else -r["change"] for r in rows]
        colours = ["tab:green" if r["passed"] else "tab:red" for r in rows]
        ax.barh([r["metric"] for r in rows], [100 * g for g in gains], color=colours)
        ax.axvline(0, color="black", lw=1)
        ax.set_xlabel(f"% better than {report['baseline']['model']['ref']}")
        save(fig, "comparison.png")
    return written
