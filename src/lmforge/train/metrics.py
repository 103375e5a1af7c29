"""Exact language-modelling metrics over a whole split: summed token losses, token- and
word-level perplexity (word-level = exp(total loss / words), so tokenizers compare fairly)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import DataLoader

from lmforge.train.dataset import IGNORE, PackedTokens


@torch.no_grad()
def split_loss(model: Any, dataset: PackedTokens, batch_size: int = 16) -> tuple[float, int]:
    """(summed cross-entropy in nats, predicted tokens) over an `eval`-mode dataset."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        input_ids = batch["input_ids"].to(device)
        labels = batch["labels"].to(device)
        logits = model(input_ids=input_ids).logits[:, :-1].float()
        targets = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        total += float(losses)
        count += int((targets != IGNORE).sum())
    model.train(was_training)
    return total, count


def perplexities(total: float, tokens: int, words: int | None) -> dict[str, float]:
    out = {"loss": total / tokens, "token_perplexity": math.exp(total / tokens)}
    if words:
        out["word_perplexity"] = math.exp(total / words)
    return out
