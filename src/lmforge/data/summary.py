"""Tables that summarize a dataset manifest (after `prepare`, `merge` and for `inspect`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lmforge.data.split import SPLITS

# A stage that removed more than this share of the corpus's characters is named at the end,
# with the option that keeps them: a default that silently drops text is a surprise.
DROPPED_SHARE = 0.02
KEEP_OPTION = {
    "too_short": (
        "--min-chars 0, or --txt-mode paragraph (short lines such as headings or speaker "
        "names then stay inside their paragraph)"
    ),
    "too_long": "a higher --max-chars",
    "low_alpha_fraction": "a lower --min-alpha-fraction",
    "repeated_lines": "a higher --max-repeated-line-fraction",
    "exact_duplicate": "--dedup none",
    "near_duplicate": "--dedup exact, or a higher --near-dup-threshold",
    "not_sampled": "--sample-fraction 1",
    "not_representative": "--sample-fraction 1",
}


def dropped_notes(manifest: dict[str, Any]) -> list[str]:
    """One line per stage that removed more than DROPPED_SHARE of the characters read."""
    stages = manifest["stages"]
    read = stages[0]["chars_in"] if stages else 0
    notes = []
    for stage in stages:
        removed = stage["chars_in"] - stage["chars_out"]
        if not read or removed / read <= DROPPED_SHARE:
            continue
        reasons = sorted(stage["removed"].items(), key=lambda item: -item[1])
        what = [
            f"{r} {_n(n)}" + (f": {KEEP_OPTION[r]} keeps them" if r in KEEP_OPTION else "")
            for r, n in reasons
        ]
        notes.append(
            f"{stage['name']} removed {removed / read:.1%} of the characters ("
            + ("; ".join(what) or "text within documents")
            + ")"
        )
    return notes


def _n(value: int) -> str:
    return f"{value:,}"


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if value >= 10_000:
        return f"{value / 1e3:.1f}k"
    return str(value)


def stage_table(manifest: dict[str, Any], seconds: dict[str, float] | None = None) -> Table:
    """One row per stage; with `seconds`, wall time and throughput (MB/s of text in)."""
    table = Table(title="stages", title_justify="left")
    for header in ("stage", "docs in", "docs out", "removed", "chars in", "chars out"):
        table.add_column(header, justify="left" if header == "stage" else "right", no_wrap=True)
    if seconds:
        table.add_column("secs", justify="right", no_wrap=True)
        table.add_column("MB/s", justify="right", no_wrap=True)
    for stage in manifest["stages"]:
        row = [
            stage["name"],
            _n(stage["docs_in"]),
            _n(stage["docs_out"]),
            _n(sum(stage["removed"].values())),
            _short(stage["chars_in"]),
            _short(stage["chars_out"]),
        ]
        if seconds:
            took = seconds.get(stage["name"], 0.0)
            rate = stage["chars_in"] / 1e6 / took if took > 0 else 0.0
            row += [f"{took:.2f}", f"{rate:.1f}"]
        table.add_row(*row)
    return table


def split_table(manifest: dict[str, Any]) -> Table:
    table = Table(title="splits", title_justify="left")
    for header in ("split", "documents", "tokens", "file"):
        table.add_column(header, justify="left" if header in ("split", "file") else "right")
    for name in SPLITS:
        split = manifest["splits"][name]
        table.add_row(name, _n(split["documents"]), _n(split["tokens"]), split["file"])
    return table


def print_summary(
    manifest: dict[str, Any],
    where: str,
    console: Console,
    seconds: dict[str, float] | None = None,
    resumed_blocks: int = 0,
) -> None:
    tok = manifest["tokenizer"]
    console.print(stage_table(manifest, seconds))
    for stage in manifest["stages"]:
        if stage["removed"]:
            reasons = ", ".join(f"{k} {_n(v)}" for k, v in stage["removed"].items())
            console.print(f"  {stage['name']} removed: {reasons}")
    console.print(split_table(manifest))
    extra = ""
    if seconds and "tokenizer" in seconds:
        extra = f"; trained in {seconds['tokenizer']:.2f}s, packed in {seconds['pack']:.2f}s"
    console.print(
        f"tokenizer: {tok['kind']}, {_n(tok['vocab_size'])} tokens, dtype {manifest['dtype']}"
        f"{extra}"
    )
    if pii := next((s for s in manifest["stages"] if s["name"] == "pii"), None):
        counts = pii["details"].get("redactions") or {}
        console.print(
            "PII redacted: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
        )
    if resumed_blocks:
        console.print(f"resumed: {_n(resumed_blocks)} blocks were done by an interrupted run")
    for note in dropped_notes(manifest):
        console.print(f"[yellow]dropped:[/yellow] {note}")
    console.print(f"dataset: [bold]{where}[/bold]")
