"""Tables that summarize a dataset manifest (after `prepare`, `merge` and for `inspect`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lmforge.data.split import SPLITS


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
    manifest: dict[str, Any], where: str, console: Console, seconds: dict[str, float] | None = None
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
    console.print(f"dataset: [bold]{where}[/bold]")
