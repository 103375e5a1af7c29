"""Does the OpenMP wait policy or the inter-op pool change training speed on a busy machine?

Runs short `lmforge train` runs (tiny model) under each setting, interleaved so that a change
in the machine's load hits every setting alike, and prints step tokens/s per setting:

    python bench/threads.py DATASET_DIR [--steps 40] [--repeats 2]

Each setting is (thread count, environment, inter-op threads). OMP_WAIT_POLICY must be in the
environment before torch loads libgomp (it reads it once, at load), so each run is its own
process; the inter-op count is set before any parallel work, in a one-line prelude."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS: dict[str, tuple[int, dict[str, str], int]] = {
    "default threads": (0, {}, 0),
    "--threads 1": (1, {}, 0),
    "default threads, OMP_WAIT_POLICY=PASSIVE": (0, {"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "--threads 1, OMP_WAIT_POLICY=PASSIVE": (1, {"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "default threads, inter-op 1": (0, {}, 1),
    "default threads, PASSIVE, inter-op 1": (0, {"OMP_WAIT_POLICY": "PASSIVE"}, 1),
}


def run(dataset: Path, steps: int, threads: int, env: dict[str, str], interop: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "train", "--data", str(dataset), "--output", f"{tmp}/m", "--model-size", "tiny",
            "--batch-size", "8", "--context-length", "64", "--max-steps", str(steps),
            "--eval-steps", str(10 * steps), "--no-track", "--threads", str(threads),
        ]  # fmt: skip
        prelude = f"import torch; torch.set_num_interop_threads({interop}); " if interop else ""
        code = f"{prelude}from lmforge.cli import main; main({args!r})"
        full = {**os.environ, "LMFORGE_NO_PROGRESS": "1", **env}
        for name in ("OMP_WAIT_POLICY",):
            if name not in env:
                full.pop(name, None)
        done = subprocess.run(
            [sys.executable, "-c", code], env=full, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        card = json.loads(Path(f"{tmp}/m/lmforge.json").read_text(encoding="utf-8"))
        return float(card["metrics"]["step_tokens_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(options.repeats):
        for name, (threads, env, interop) in SETTINGS.items():
            rates[name].append(run(options.dataset, options.steps, threads, env, interop))
            print(f"{name}: {rates[name][-1]:,.0f} tokens/s", file=sys.stderr, flush=True)
    print(f"{'setting':45} {'median tokens/s':>16}  runs")
    for name, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:45} {statistics.median(values):>16,.0f}  {runs}")


if __name__ == "__main__":
    main()
