"""Benchmark `lmforge data prepare` on PTB: wall time, peak RSS, and per-stage throughput.

    python bench/data_prepare.py [--corpus ../shared/data/ptb/ptb.train.txt] [--copies 1 4]

Each run is a fresh child process (so its peak RSS is its own). The cleaning stages' MB/s is
text characters in per second of time spent in that stage; tokenization is the BPE training
plus the parallel encode-and-pack of every split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = """
import json, sys
from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.prepare import prepare
cfg = build_config(PrepareConfig, json.loads(sys.argv[1]))
result = prepare(cfg)
print(json.dumps({"seconds": result.seconds, "manifest": result.manifest}))
"""


def run_once(corpus: Path, output: Path, vocab_size: int) -> dict[str, Any]:
    options = {
        "inputs": [str(corpus)],
        "output": str(output),
        "vocab_size": vocab_size,
        "force": True,
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(options)],
        stdout=subprocess.PIPE,
        env={**os.environ, "LMFORGE_NO_PROGRESS": "1"},
    )
    stdout = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        sys.exit(f"prepare failed with status {status}")
    result: dict[str, Any] = json.loads(stdout)
    result["wall"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def report(label: str, size_mb: float, result: dict[str, Any]) -> None:
    seconds = result["seconds"]
    stages = {s["name"]: s for s in result["manifest"]["stages"]}
    cleaning = ("read", "normalize", "filter", "pii", "dedup", "sample")
    clean_s = sum(seconds.get(name, 0.0) for name in cleaning)
    token_s = seconds["tokenizer"] + seconds["pack"]
    text_mb = stages["read"]["chars_in"] / 1e6
    packed_mb = stages["sample"]["chars_out"] / 1e6
    dedup = stages["dedup"]
    print(f"\n## {label}: {size_mb:.1f} MB input")
    print(f"wall {result['wall']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    print(f"cleaning stages (read→sample): {clean_s:.2f} s, {text_mb / clean_s:.2f} MB/s")
    for name in cleaning:
        took = seconds.get(name, 0.0)
        rate = stages[name]["chars_in"] / 1e6 / took if took else float("inf")
        print(f"  {name:<10} {took:6.2f} s  {rate:8.1f} MB/s")
    print(
        f"tokenization: train {seconds['tokenizer']:.2f} s + encode/pack {seconds['pack']:.2f} s"
        f" = {packed_mb / token_s:.2f} MB/s of kept text"
    )
    print(
        f"dedup removed {dedup['removed']}, index {dedup['details']['index_documents']:,} docs"
        f" = {dedup['details']['index_bytes'] / 1e6:.1f} MB"
    )
    print(
        "tokens: "
        + ", ".join(f"{k} {v['tokens']:,}" for k, v in result["manifest"]["splits"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/data/ptb/ptb.train.txt"))
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus {args.corpus} not found (see ../shared/data/SOURCES.md)")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    text = args.corpus.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        for copies in args.copies:
            corpus = Path(tmp) / f"corpus_x{copies}.txt"
            corpus.write_bytes(text * copies)
            result = run_once(corpus, Path(tmp) / f"out_x{copies}", args.vocab_size)
            report(f"{args.corpus.name} x{copies}", len(text) * copies / 1e6, result)


if __name__ == "__main__":
    main()
