"""Print the training benchmark's numbers from the model dirs that bench/train_ptb.sh wrote,
and plot the loss curves of the torchrun runs (1 process against 2) to OUT/ddp_loss.png."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MODELS = (
    "teacher",
    "student-distilled",
    "student-scratch",
    "throughput-fp32",
    "throughput-bf16",
    "ddp-1",
    "ddp-2",
)


def metrics(model_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((model_dir / "lmforge.json").read_text())["metrics"]
    return found


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
    ddp_report(out)


def logged_curves(checkpoints: Path) -> dict[str, list[tuple[int, float]]]:
    """Training and valid loss per logged step, from the newest checkpoint's trainer state."""
    newest = max(checkpoints.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text())["log_history"]
    return {
        name: [(entry["step"], entry[key]) for entry in history if key in entry]
        for name, key in (("train", "loss"), ("valid", "eval_valid_loss"))
    }


def ddp_report(out: Path) -> None:
    runs = {
        label: logged_curves(out / f"{name}.checkpoints")
        for label, name in (("1 process", "ddp-1"), ("2 processes", "ddp-2"))
        if (out / f"{name}.checkpoints").is_dir()
    }
    if len(runs) < 2:
        return
    print("\n| step | train loss, 1 process | 2 processes | valid loss, 1 process | 2 processes |")
    print("|---|---|---|---|---|")
    one, two = runs["1 process"], runs["2 processes"]
    for (step, valid_one), (_, valid_two) in zip(one["valid"], two["valid"], strict=True):
        # The training loss is logged every few steps: the last one at or before the eval.
        train_one, train_two = (
            [loss for logged, loss in run["train"] if logged <= step][-1] for run in (one, two)
        )
        print(f"| {step} | {train_one:.4f} | {train_two:.4f} | {valid_one:.4f} | {valid_two:.4f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for (label, curves), style in zip(runs.items(), ("-", "--"), strict=True):
        for (name, points), color in zip(curves.items(), ("tab:blue", "tab:orange"), strict=True):
            steps, values = zip(*points, strict=True)
            marker = "o" if name == "valid" else None
            ax.plot(steps, values, style, color=color, marker=marker, label=f"{name}, {label}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("torchrun: 1 process against 2, same global batch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ddp_loss.png")
    plt.close(fig)
    print(f"\nloss curves: {out / 'ddp_loss.png'}")


if __name__ == "__main__":
    main()
