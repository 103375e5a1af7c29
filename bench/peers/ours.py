"""Our engine, fp32 and int8, on the peers' workload: bench/engine.py's measurement (all
requests submitted at once, at most `batch` running, as a server sees them), run in the
project's venv. Its greedy output of the first prompt is what the peers' outputs are compared
with."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for engine.py

from common import arguments, prompts_for, write
from engine import ours

import lmforge
from lmforge.config.serve import EngineSettings
from lmforge.serve.engine import Engine
from lmforge.serve.request import Kind, SamplingParams


def main() -> None:
    work, result = arguments()
    params = SamplingParams(max_new_tokens=work["new_tokens"], temperature=0, ignore_eos=True)
    rows = []
    for quantize in ("none", "int8"):
        system = "lmforge fp32" if quantize == "none" else "lmforge int8"
        # The bench model is a plain HF dir bench/engine.py writes, with no lmforge.json card.
        settings = EngineSettings(quantize=quantize, unverified=True)
        with Engine(Path(work["model"]), settings) as engine:
            ours(engine, work["prompts"][:8], 8, "warm-up")
            first = engine.run(engine.request(work["prompts"][0], Kind.GENERATE, params))
            for batch in work["batches"]:
                prompts = prompts_for(work, batch)
                runs = [
                    ours(engine, prompts, batch, system)
                    for _ in range(1 if batch == 1 else work["repeat"])
                ]
                best = max(runs, key=lambda entry: entry["output_tokens_per_s"])
                rows.append(
                    {
                        "system": system,
                        "mode": "offline",
                        "batch": batch,
                        "output_tokens_per_s": best["output_tokens_per_s"],
                        "seconds": best["seconds"],
                        "requests": best["requests"],
                        "first_output": first.token_ids,
                    }
                )
                rate = best["output_tokens_per_s"]
                print(f"{system:<28} batch {batch:>2}  {rate:8.1f} tok/s", flush=True)
    write(result, rows, {"lmforge": lmforge.__version__})


if __name__ == "__main__":
    main()
