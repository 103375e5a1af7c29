"""The loss-curve PNG of a training run (train loss, valid loss and the train sample's loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_curve(log_history: list[dict[str, Any]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {
        "train (running)": [(h["step"], h["loss"]) for h in log_history if "loss" in h],
        "valid": [(h["step"], h["eval_valid_loss"]) for h in log_history if "eval_valid_loss" in h],
        "train sample": [
            (h["step"], h["eval_train_loss"]) for h in log_history if "eval_train_loss" in h
        ],
    }
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, points in series.items():
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=label, marker="o" if label != "train (running)" else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
