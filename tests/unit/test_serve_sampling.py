"""Sampling functions over fabricated logits."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.serve import sampling
from lmforge.serve.request import SamplingParams


def test_penalties_follow_their_formulas() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    params = SamplingParams(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25)
    sampling.penalize(logits, params, seen_ids=[0, 1, 2], output_ids=[2, 2])
    # Positive logits are divided by the penalty, negative ones multiplied; the output's
    # tokens also lose presence + frequency * count.
    assert logits.tolist() == pytest.approx([1.0, -4.0, 0.5 - 0.5 - 0.5, 0.5])


def test_forbid_and_finite_rows() -> None:
    logits = torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [float("inf"), 0.0]])
    assert sampling.finite_rows(logits) == [True, False, False]
    sampling.forbid(logits[0], 1)
    assert logits[0, 1] == -math.inf


def test_top_k_and_top_p_keep_only_the_likeliest_tokens() -> None:
    logits = torch.tensor([0.0, 5.0, 4.9, -1.0])
    generator = sampling.generator_for(0, torch.device("cpu"))
    for params in (SamplingParams(top_k=1), SamplingParams(top_p=1e-9)):
        assert {sampling.draw(logits, params, generator) for _ in range(20)} == {1}
    drawn = {sampling.draw(logits, SamplingParams(top_k=2), generator) for _ in range(50)}
    assert drawn == {1, 2}


def test_seeds_repeat_draws_and_any_integer_is_a_seed() -> None:
    logits = torch.zeros(50)

    def draws(seed: int) -> list[int]:
        generator = sampling.generator_for(seed, torch.device("cpu"))
        return [sampling.draw(logits, SamplingParams(), generator) for _ in range(8)]

    assert draws(-5193975434741508977138335744) == draws(-5193975434741508977138335744)
    assert draws(1) != draws(2)


def test_logprobs_are_log_softmax_values() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    expected = logits.log_softmax(dim=-1)
    picked = sampling.top_logprobs(logits, tokens=[0, 0], counts=[2, 1])
    assert picked[0][0] == pytest.approx(expected[0, 0].item())
    assert list(picked[0][1]) == [2, 1] and list(picked[1][1]) == [0]
    scores = sampling.token_logprobs(logits, torch.tensor([2, 1]))
    assert scores == pytest.approx([expected[0, 2].item(), expected[1, 1].item()])
