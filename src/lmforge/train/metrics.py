"""Exact language-modelling metrics over a whole split: summed token losses, token- and
word-level perplexity (word-level = exp(total loss / words), so tokenizers compare fairly).
`summed_loss` and `perplexities` are public entry points that evaluation uses too."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from lmforge.hf import IGNORE
from lmforge.train.dataset import PackedTokens

if TYPE_CHECKING:
    from lmforge.train.data import LmData


@torch.no_grad()
def summed_loss(model: Any, batches: Iterable[dict[str, torch.Tensor]]) -> tuple[float, int]:
    """(summed cross-entropy in nats, predicted tokens) over batches of input_ids and labels
    (labels equal to IGNORE are not predicted; an attention_mask is passed on when present)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits[:, :-1].float()
        targets = batch["labels"][:, 1:].to(device)
        total += float(
            torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                targets.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
        )
        count += int((targets != IGNORE).sum())
    model.train(was_training)
    return total, count


def split_loss(model: Any, dataset: PackedTokens, batch_size: int = 16) -> tuple[float, int]:
    """`summed_loss` over an `eval`-mode token file: every token after the first, once."""
    return summed_loss(model, DataLoader(dataset, batch_size=batch_size))


def perplexities(total: float, tokens: int, words: int | None) -> dict[str, float]:
    out = {"loss": total / tokens, "token_perplexity": math.exp(total / tokens)}
    if words:
        out["word_perplexity"] = math.exp(total / words)
    return out


def lm_final_metrics(data: LmData) -> Callable[[Any], dict[str, float]]:
    """Exact valid/test losses and perplexities, plus the train–valid gap."""

    def compute(model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        parts = [("valid", data.valid), ("train_sample", data.train_sample), ("test", data.test)]
        for name, dataset in parts:
            if dataset is None:
                continue
            total, tokens = split_loss(model, dataset)
            words = data.words("train" if name == "train_sample" else name)
            scored = perplexities(total, tokens, words if name != "train_sample" else None)
            out.update({f"{name}_{k}": v for k, v in scored.items()})
        out["train_valid_gap"] = out["valid_loss"] - out["train_sample_loss"]
        return out

    return compute
