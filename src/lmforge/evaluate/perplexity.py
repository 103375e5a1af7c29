"""Sliding-window perplexity, as in the Hugging Face fixed-length perplexity guide: windows of
`context` tokens start every `stride` tokens and each token is scored once, by the first window
whose new part covers it, with up to `context - stride` tokens of context before it. Losses are
summed per token (not averaged per window), so the totals are exact; word-level perplexity and
bits per byte (lm-evaluation-harness conventions) make different tokenizers comparable."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmforge.train.dataset import IGNORE


@dataclass
class Scored:
    """Summed negative log-likelihood (nats) over `tokens` predicted tokens."""

    nll: float
    tokens: int
    seconds: float

    def metrics(self, words: int, text_bytes: int) -> dict[str, float]:
        return {
            "token_perplexity": math.exp(self.nll / self.tokens),
            "word_perplexity": math.exp(self.nll / words),
            "bits_per_byte": self.nll / (text_bytes * math.log(2)),
            "loss": self.nll / self.tokens,
            "tokens": float(self.tokens),
            "words": float(words),
            "bytes": float(text_bytes),
            "tokens_per_second": self.tokens / max(self.seconds, 1e-9),
        }


def windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, new) per window: tokens [begin, end) are fed and the last `new` are the
    window's targets. With stride < context every token after the first is scored exactly once;
    with stride == context (disjoint windows) each window's first token has no context and is
    not scored, as in the guide."""
    out = []
    previous_end = 0
    for begin in range(0, length, stride):
        end = min(begin + context, length)
        new = end - max(previous_end, 1)
        if new > 0:
            out.append((begin, end, new))
        previous_end = end
        if end == length:
            break
    return out


def _batches(
    ids: np.ndarray, plan: list[tuple[int, int, int]], batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(plan), batch_size):
        chunk = plan[start : start + batch_size]
        width = max(end - begin for begin, end, _ in chunk)
        inputs = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (begin, end, new) in enumerate(chunk):
            window = torch.from_numpy(ids[begin:end].astype(np.int64))
            inputs[row, : end - begin] = window
            mask[row, : end - begin] = 1
            labels[row, end - begin - new : end - begin] = window[-new:]
        yield {"input_ids": inputs, "attention_mask": mask, "labels": labels}


def score_tokens(
    model: Any, ids: np.ndarray, context: int, stride: int, batch_size: int = 8
) -> Scored:
    """Sum the NLL of every token of `ids` after the first with sliding windows."""
    from lmforge.train.metrics import summed_loss

    if stride < 1 or stride > context:
        raise ValueError(f"stride {stride} must be in [1, context {context}]")
    started = time.perf_counter()
    plan = windows(len(ids), context, stride)
    total, count = summed_loss(model, _batches(ids, plan, batch_size))
    return Scored(total, count, time.perf_counter() - started)
