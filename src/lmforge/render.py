"""What the CLI prints on stdout: rich tables for people, one JSON document for machines.

Every renderer takes the same plain document that `--json` prints, so a table never shows a
fact that the JSON lacks."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def console() -> Console:
    return Console(soft_wrap=False)


def json_document(document: object) -> None:
    """The one JSON document of a `--json` run, alone on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _number(value: float) -> str:
    return f"{value:,.4f}" if abs(value) < 1e5 else f"{value:,.0f}"


def metrics(title: str, values: Mapping[str, float], where: str) -> None:
    """Final metrics of a training run and where its model is."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in values.items():
        table.add_row(name, _number(value))
    out = console()
    out.print(table)
    out.print(f"model: [bold]{where}[/bold]")


def registered(document: Mapping[str, Any]) -> None:
    """`registry register`: the new version's reference, run and parent."""
    parent = document["parent"] or "none"
    line(f"registered [bold]{document['ref']}[/bold] (run {document['run_id']}, parent {parent})")


def versions(document: Mapping[str, Any]) -> None:
    """`registry list` ({versions: [...]}): one row per version with its headline metrics."""
    table = Table(title="registered models", title_justify="left")
    for header in ("model", "version", "aliases", "task", "parent", "valid loss", "test word ppl"):
        table.add_column(header)
    for v in document["versions"]:
        m = v["metrics"]
        table.add_row(
            v["name"],
            v["version"],
            " ".join(f"@{a}" for a in v["aliases"]),
            v["task"],
            v["parent"] or "-",
            f"{m['valid_loss']:.4f}" if "valid_loss" in m else "-",
            f"{m['test_word_perplexity']:.1f}" if "test_word_perplexity" in m else "-",
        )
    console().print(table)


def version(described: Mapping[str, Any]) -> None:
    """`registry show`: the described version as highlighted JSON."""
    console().print_json(json.dumps(described))


def diff(document: Mapping[str, Any]) -> None:
    """`registry diff`: two versions side by side, differences in bold."""
    left, right = document["left"], document["right"]
    table = Table(title=f"{document['name']}: {left} vs {right}", title_justify="left")
    for header in ("field", f"v{left}", f"v{right}"):
        table.add_column(header)
    for row in document["rows"]:
        style = "bold" if row["differs"] else "dim"
        table.add_row(row["field"], row["left"], row["right"], style=style)
    console().print(table)


def _optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def promotion(document: Mapping[str, Any]) -> None:
    """`registry promote`: the gate's table, then the alias move when there was one."""
    alias, previous = document["alias"], document["previous"] or "-"
    table = Table(title="promotion gate", title_justify="left")
    for header in (
        "metric",
        f"@{alias} (v{previous})",
        f"v{document['version']}",
        "worse by",
        "allowed",
        "verdict",
    ):
        table.add_column(header)
    for row in document["gate"]["rows"]:
        table.add_row(
            row["metric"],
            _optional(row["baseline"], ".4f"),
            _optional(row["candidate"], ".4f"),
            _optional(row["regression"], "+.2%"),
            f"{row['max_regression']:.2%}",
            row["verdict"],
            style="red" if row["verdict"] == "regressed" else None,
        )
    out = console()
    out.print(table)
    if document["moved"]:
        out.print(f"@{alias} → v{document['version']} (was v{previous})")


def inspection(document: Mapping[str, Any]) -> None:
    """`data inspect` after the manifest summary: file integrity and decoded samples."""
    bad = {name: state for name, state in document["files"].items() if state != "ok"}
    out = console()
    out.print("files: " + ("all sha256 ok" if not bad else f"[red]{bad}[/red]"))
    for index, sample in enumerate(document["samples"], 1):
        out.rule(f"{document['split']} sample {index}")
        out.print(sample, markup=False, highlight=False)


def evaluation(markdown: str, report_dir: str) -> None:
    """`eval`: the report's markdown and where report.json went."""
    out = console()
    out.print(markdown, markup=False, highlight=False, soft_wrap=True)
    out.print(f"report: [bold]{report_dir}[/bold]")


def line(text: str) -> None:
    """One line of rich markup, for verbs whose result is a sentence."""
    console().print(text)
