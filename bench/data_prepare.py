"""Benchmark `lmforge data prepare`: one table of wall time, MB/s and peak RSS.

    python bench/data_prepare.py [--generated-mb 1000] [--workers 0] [--no-ray]

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_generate import write_corpus

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
# What the dedup of the pipeline removed, by ordinal: the same block functions, in order.
REMOVED = """
import json, sys
from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import blocks_of, clean_block
from lmforge.data.prepare import ordered_stages
from lmforge.data.sources import Reader, ReadOptions
cfg = build_config(PrepareConfig, json.loads(sys.argv[1]))
dedup = ordered_stages(cfg)[0]
removed = []
options = ReadOptions(
    cfg.txt_mode, cfg.text_field, cfg.text_column, cfg.strict, encoding=cfg.encoding
)
for block in blocks_of(Reader(cfg.inputs, options).documents()):
    done = clean_block(cfg, block, True)
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


def cpu_flags() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next(
        (line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), []
    )
    wanted = ("sse4_2", "avx", "avx2", "avx512f", "sha_ni", "aes")
    return " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)


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
    args = parser.parse_args()
    ptb = args.data / "ptb" / "ptb.train.txt"
    if not ptb.is_file():
        sys.exit(f"{ptb} not found (see ../shared/data/SOURCES.md)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, CPU flags: {cpu_flags()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    rows: list[tuple[str, float, float, float, str]] = []
    notes: list[str] = []
    common = {"vocab_size": args.vocab_size, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mb = ptb.stat().st_size / 1e6
        one = prepare(ptb, work / "x1", **common)
        bare = child(BARE, str(ptb), str(args.vocab_size))
        rows.append(("PTB train: prepare", mb, one["wall"], one["rss_mb"], stage_times(one)))
        rows.append(
            ("PTB train: bare tokenizers train+encode", mb, bare["wall"], bare["rss_mb"], "")
        )
        notes.append(f"index bytes per unique document: {dedup_details(one)['details']}")

        four = work / "ptb_x4.txt"
        four.write_bytes(ptb.read_bytes() * 4)
        x4 = prepare(four, work / "x4", **common)
        same = (work / "x1" / "train.bin").read_bytes() == (work / "x4" / "train.bin").read_bytes()
        removed = dedup_details(x4)["removed"]
        rows.append(
            (
                "PTB train x4",
                4 * mb,
                x4["wall"],
                x4["rss_mb"],
                f"train.bin equal to x1: {same}; {removed}",
            )
        )

        generated = work / "generated.jsonl"
        planted = write_corpus(generated, args.data, int(args.generated_mb * 1e6))
        gen_mb = generated.stat().st_size / 1e6
        local = prepare(generated, work / "gen_local", **common)
        config = {"inputs": [str(generated)], "output": str(work / "unused"), **common}
        found = set(child(REMOVED, json.dumps(config))["removed"])
        hits = len(found & planted)
        recall, precision = hits / max(len(planted), 1), hits / max(len(found), 1)
        quality = (
            f"planted {len(planted):,}, removed {len(found):,}: "
            f"recall {recall:.3f}, precision {precision:.3f}"
        )
        rows.append(
            (f"generated {gen_mb:.0f} MB (local)", gen_mb, local["wall"], local["rss_mb"], quality)
        )
        notes.append(f"generated, local: {stage_times(local)}")
        if not args.no_ray:
            ray = prepare(generated, work / "gen_ray", engine="ray", **common)
            files = ("train.bin", "valid.bin", "test.bin", "tokenizer.json")
            equal = all(
                (work / "gen_local" / f).read_bytes() == (work / "gen_ray" / f).read_bytes()
                for f in files
            )
            rows.append(
                (
                    f"generated {gen_mb:.0f} MB (Ray, local)",
                    gen_mb,
                    ray["wall"],
                    ray["rss_mb"],
                    f"same bytes as local: {equal}",
                )
            )

    print("\n| run | MB | wall s | MB/s | peak RSS MB | notes |\n|---|---|---|---|---|---|")
    for name, size, wall, rss, note in rows:
        print(f"| {name} | {size:.1f} | {wall:.1f} | {size / wall:.2f} | {rss:.0f} | {note} |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
