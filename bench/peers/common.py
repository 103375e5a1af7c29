"""What every peer script shares (standard library only: each runs in its own venv): the
workload the driver wrote, static batches timed alike for every engine, and the result file the
driver reads back.

    <venv>/bin/python bench/peers/<peer>.py WORKLOAD.json RESULT.json
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (prompts as token ids, tokens to generate) -> exactly that many new token ids per prompt.
Generate = Callable[[list[list[int]], int], list[list[int]]]


def arguments() -> tuple[dict[str, Any], Path]:
    """The workload the driver wrote (model dir, prompts, output length, batches) and where
    this script writes its result."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} WORKLOAD.json RESULT.json")
    return json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), Path(sys.argv[2])


def prompts_for(work: dict[str, Any], batch: int) -> list[list[int]]:
    """Batch 1 runs fewer requests (its rate is per request, and a whole set would take
    minutes on a slow peer); every engine, ours included, gets the same prompts."""
    prompts: list[list[int]] = work["prompts"]
    return prompts[: work["single_requests"]] if batch == 1 else prompts


def static_batches(generate: Generate, prompts: list[list[int]], batch: int, new: int) -> dict:
    """All requests queued at t=0, served `batch` at a time, each batch after the previous."""
    tokens, first_output = 0, None
    started = time.perf_counter()
    for i in range(0, len(prompts), batch):
        outputs = generate(prompts[i : i + batch], new)
        lengths = {len(out) for out in outputs}
        if lengths != {new} or len(outputs) != len(prompts[i : i + batch]):
            raise RuntimeError(f"asked for {new} tokens per prompt, got lengths {lengths}")
        tokens += new * len(outputs)
        first_output = first_output if first_output is not None else outputs[0]
    seconds = time.perf_counter() - started
    return {
        "output_tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "requests": len(prompts),
        "first_output": first_output,
    }


def measure(system: str, generate: Generate, work: dict[str, Any]) -> list[dict]:
    """One row per batch size; batched rows keep the fastest of `repeat` runs (the machines
    are shared), as bench/engine.py does for every system."""
    generate(work["prompts"][:8], 8)  # warm-up: first-call allocations, lazy compilation
    rows = []
    for batch in work["batches"]:
        prompts = prompts_for(work, batch)
        runs = 1 if batch == 1 else work["repeat"]
        measured = [
            static_batches(generate, prompts, batch, work["new_tokens"]) for _ in range(runs)
        ]
        best = max(measured, key=lambda entry: entry["output_tokens_per_s"])
        rows.append({"system": system, "mode": "offline", "batch": batch, **best})
        print(
            f"{system:<28} batch {batch:>2}  {best['output_tokens_per_s']:8.1f} tok/s", flush=True
        )
    return rows


def write(result: Path, rows: list[dict], versions: dict[str, str]) -> None:
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps({"versions": versions, "rows": rows}, indent=2), encoding="utf-8")
