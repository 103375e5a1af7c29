"""Benchmark `lmforge data prepare`: one table of wall time, MB/s and peak RSS.

    python bench/data_prepare.py [--generated-mb 1000] [--workers 0] [--no-ray]
        [--generated-only] [--no-local-generated]

Rows: PTB train end to end against the bare `tokenizers` train + encode of the same file in
the same run; four concatenated copies of PTB (dedup must remove every copy: train.bin equal
to one copy's); a corpus generated from ../shared/data with planted near-copies (recall and
precision of the planted copies); the same corpus on a local Ray. Each run is a fresh child
process, so its peak RSS is its own (for Ray: the driver's).
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

from lmforge.cpuinfo import cpu_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_generate import write_corpus

Row = tuple[str, float, float, float, str]
OUTPUTS = ("train", "valid", "test")

PREPARE = """
import json, sys
from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.prepare import prepare
cfg = build_config(PrepareConfig, json.loads(sys.argv[1]))
result = prepare(cfg)
print(json.dumps({"seconds": result.seconds, "manifest": result.manifest}))
"""
BARE = """
import json, sys
from lmforge.data.tokenizer import train_bpe
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
tokenizer = train_bpe(iter(lines), int(sys.argv[2]), 2)
for start in range(0, len(lines), 1024):
    tokenizer.encode_batch(lines[start : start + 1024], add_special_tokens=False)
print(json.dumps({}))
"""
# What the dedup of the pipeline removed, by ordinal: the same blocks on the local engine's
# workers, decided in order.
REMOVED = """
import json, sys
from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import blocks_of
from lmforge.data.engines.local import cleaned_blocks
from lmforge.data.prepare import ordered_stages
from lmforge.data.sources import Reader, ReadOptions
from lmforge.threads import usable_cpus
cfg = build_config(PrepareConfig, json.loads(sys.argv[1]))
dedup = ordered_stages(cfg)[0]
removed = []
options = ReadOptions(
    cfg.txt_mode, cfg.text_field, cfg.text_column, cfg.strict, encoding=cfg.encoding
)
blocks = blocks_of(Reader(cfg.inputs, options).documents())
for done in cleaned_blocks(cfg, blocks, workers=usable_cpus(), fingerprint=True):
    keep = dedup.decide(done.docs, done.prints)
    removed += [d.ordinal for d, k in zip(done.docs, keep) if not k]
print(json.dumps({"removed": removed}))
"""


def child(code: str, *args: str) -> dict[str, Any]:
    started = time.perf_counter()
    env = {**os.environ, "LMFORGE_NO_PROGRESS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env)
    stdout = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        sys.exit(f"a benchmark child failed with status {status}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def prepare(corpus: Path, output: Path, **options: Any) -> dict[str, Any]:
    config = {"inputs": [str(corpus)], "output": str(output), "force": True, **options}
    return child(PREPARE, json.dumps(config))


def stage_times(result: dict[str, Any]) -> str:
    seconds, stages = result["seconds"], result["manifest"]["stages"]
    parts = []
    for stage in stages:
        took = seconds.get(stage["name"], 0.0)
        rate = stage["chars_in"] / 1e6 / took if took else 0.0
        parts.append(f"{stage['name']} {took:.2f}s ({rate:.1f} MB/s)")
    parts.append(f"tokenizer {seconds['tokenizer']:.2f}s, pack {seconds['pack']:.2f}s")
    return "; ".join(parts)


def dedup_details(result: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in result["manifest"]["stages"] if s["name"] == "dedup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--generated-mb", type=float, default=1000.0)
    parser.add_argument("--workers", type=int, default=0, help="0 = every core")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    parser.add_argument(
        "--generated-only",
        action="store_true",
        help="only the generated corpus's rows (when the machine allows no longer run)",
    )
    parser.add_argument(
        "--no-local-generated",
        action="store_true",
        help="skip the generated corpus's local row and its recall (compare the printed "
        "output digests with another run's instead)",
    )
    args = parser.parse_args()
    ptb = args.data / "ptb" / "ptb.train.txt"
    if not ptb.is_file():
        sys.exit(f"{ptb} not found (see ../shared/data/SOURCES.md)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}\n{cpu_flags()}"
    )
    rows: list[Row] = []
    notes: list[str] = []
    common = {"vocab_size": args.vocab_size, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.generated_only:
            ptb_rows(ptb, work, common, args.vocab_size, rows, notes)
        generated_rows(args, work, common, rows, notes)

    print("\n| run | MB | wall s | MB/s | peak RSS MB | notes |\n|---|---|---|---|---|---|")
    for name, size, wall, rss, note in rows:
        print(f"| {name} | {size:.1f} | {wall:.1f} | {size / wall:.2f} | {rss:.0f} | {note} |")
    for note in notes:
        print(f"\n{note}")


def output_digest(result: dict[str, Any]) -> str:
    """The manifest's sha256 of every token file and the tokenizer: equal digests, equal bytes."""
    manifest = result["manifest"]
    parts = [manifest["splits"][name]["sha256"][:12] for name in OUTPUTS]
    return " ".join([*parts, manifest["tokenizer"]["sha256"][:12]])


def ptb_rows(
    ptb: Path,
    work: Path,
    common: dict[str, Any],
    vocab_size: int,
    rows: list[Row],
    notes: list[str],
) -> None:
    """PTB end to end against the bare tokenizers in the same run; four copies of it."""
    mb = ptb.stat().st_size / 1e6
    one = prepare(ptb, work / "x1", **common)
    bare = child(BARE, str(ptb), str(vocab_size))
    rows.append(("PTB train: prepare", mb, one["wall"], one["rss_mb"], stage_times(one)))
    rows.append(("PTB train: bare tokenizers train+encode", mb, bare["wall"], bare["rss_mb"], ""))
    notes.append(f"index bytes per unique document: {dedup_details(one)['details']}")

    four = work / "ptb_x4.txt"
    four.write_bytes(ptb.read_bytes() * 4)
    x4 = prepare(four, work / "x4", **common)
    same = (work / "x1" / "train.bin").read_bytes() == (work / "x4" / "train.bin").read_bytes()
    removed = dedup_details(x4)["removed"]
    note = f"train.bin equal to x1: {same}; {removed}; RSS x4/x1 {x4['rss_mb'] / one['rss_mb']:.2f}"
    rows.append(("PTB train x4", 4 * mb, x4["wall"], x4["rss_mb"], note))


def generated_rows(
    args: argparse.Namespace, work: Path, common: dict[str, Any], rows: list[Row], notes: list[str]
) -> None:
    """The generated corpus on the local engine (with the planted copies' recall and
    precision) and on a local Ray, with their outputs' digests."""
    generated = work / "generated.jsonl"
    planted = write_corpus(generated, args.data, int(args.generated_mb * 1e6))
    gen_mb = generated.stat().st_size / 1e6
    local: dict[str, Any] | None = None
    if not args.no_local_generated:
        local = prepare(generated, work / "gen_local", **common)
        config = {"inputs": [str(generated)], "output": str(work / "unused"), **common}
        found = set(child(REMOVED, json.dumps(config))["removed"])
        hits = len(found & planted)
        recall, precision = hits / max(len(planted), 1), hits / max(len(found), 1)
        quality = (
            f"planted {len(planted):,}, removed {len(found):,}: "
            f"recall {recall:.3f}, precision {precision:.3f}; digest {output_digest(local)}"
        )
        rows.append(
            (f"generated {gen_mb:.0f} MB (local)", gen_mb, local["wall"], local["rss_mb"], quality)
        )
        notes.append(f"generated, local: {stage_times(local)}")
        notes.append(f"generated, local, dedup: {dedup_details(local)['details']}")
    if not args.no_ray:
        ray = prepare(generated, work / "gen_ray", engine="ray", **common)
        note = f"digest {output_digest(ray)}"
        if local is not None:
            note += f"; same bytes as local: {output_digest(ray) == output_digest(local)}"
        name = f"generated {gen_mb:.0f} MB (Ray, local, {common['workers'] or 'all'} CPUs)"
        rows.append((name, gen_mb, ray["wall"], ray["rss_mb"], note + " (driver RSS)"))
        notes.append(f"generated, Ray: {stage_times(ray)}")


if __name__ == "__main__":
    main()
