"""Print the training benchmark's numbers from the model dirs that bench/train_ptb.sh wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODELS = (
    "teacher",
    "student-distilled",
    "student-scratch",
    "throughput-fp32",
    "throughput-bf16",
    "ddp-1",
    "ddp-2",
)


def metrics(model_dir: Path) -> dict:
    return json.loads((model_dir / "lmforge.json").read_text())["metrics"]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/out")
    print(
        "| model | steps | valid word ppl | test token ppl | test word ppl | train-valid gap "
        "| tokens/s (wall) | tokens/s (steps) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        if (out / name / "lmforge.json").is_file():
            m = metrics(out / name)
            print(
                f"| {name} | {m['steps']:.0f} | {m['valid_word_perplexity']:.1f} | "
                f"{m['test_token_perplexity']:.1f} | {m['test_word_perplexity']:.1f} | "
                f"{m['train_valid_gap']:.3f} | {m['train_tokens_per_second']:,.0f} | "
                f"{m['step_tokens_per_second']:,.0f} |"
            )


if __name__ == "__main__":
    main()
