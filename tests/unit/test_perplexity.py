"""Sliding-window perplexity against `transformers`' own loss on the same windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmforge.evaluate.perplexity import Scored, score_tokens, windows


@pytest.fixture(scope="module")
def tiny_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=300, n_positions=64, n_embd=64, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize(
    ("length", "context", "stride"), [(200, 64, 32), (200, 64, 17), (65, 64, 8)]
)
def test_windows_score_every_token_once(length: int, context: int, stride: int) -> None:
    scored = np.zeros(length, dtype=int)
    for begin, end, new in windows(length, context, stride):
        assert 0 < new <= end - begin <= context
        scored[end - new : end] += 1
    assert scored[0] == 0  # the first token has no context
    assert (scored[1:] == 1).all()


def _reference(
    model: GPT2LMHeadModel, ids: np.ndarray, context: int, stride: int
) -> tuple[float, int]:
    """The Hugging Face guide's loop, with its mean loss turned back into a sum."""
    total, count = 0.0, 0
    previous_end = 0
    tensor = torch.from_numpy(ids).unsqueeze(0)
    for begin in range(0, len(ids), stride):
        end = min(begin + context, len(ids))
        target_len = end - previous_end
        inputs = tensor[:, begin:end]
        labels = inputs.clone()
        labels[:, :-target_len] = -100
        with torch.no_grad():
            loss = model(input_ids=inputs, labels=labels).loss
        predicted = int((labels[:, 1:] != -100).sum())
        total += float(loss) * predicted
        count += predicted
        previous_end = end
        if end == len(ids):
            break
    return total, count


@pytest.mark.parametrize(("context", "stride"), [(64, 64), (64, 32), (48, 16)])
def test_parity_with_transformers_loss(
    tiny_model: GPT2LMHeadModel, context: int, stride: int
) -> None:
    ids = np.random.default_rng(1).integers(0, 300, size=301)
    ours = score_tokens(tiny_model, ids, context, stride, batch_size=3)
    total, count = _reference(tiny_model, ids, context, stride)
    assert ours.tokens == count
    assert ours.nll == pytest.approx(total, rel=1e-4)
    assert math.exp(ours.nll / ours.tokens) == pytest.approx(math.exp(total / count), rel=1e-4)


def test_derived_metrics_by_hand() -> None:
    scored = Scored(nll=100.0, tokens=50, seconds=2.0)
    metrics = scored.metrics(words=40, text_bytes=200)
    assert metrics["token_perplexity"] == pytest.approx(math.exp(2.0))
    assert metrics["word_perplexity"] == pytest.approx(math.exp(2.5))
    assert metrics["bits_per_byte"] == pytest.approx(100 / (200 * math.log(2)))
    assert metrics["tokens_per_second"] == 25.0
