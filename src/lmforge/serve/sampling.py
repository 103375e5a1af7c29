"""Picking tokens: pure functions over logits (penalties, the min-tokens end-of-text mask,
temperature / top-k / top-p draws, log-probabilities). Rows are [vocab] float tensors;
functions that say "in place" change the row they are given."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lmforge.serve.request import SamplingParams


def finite_rows(logits: torch.Tensor) -> list[bool]:
    """Per row of [N, vocab]: no NaN or Inf. A row sum is NaN or infinite exactly when some
    entry is: one pass, not three."""
    return [bool(ok) for ok in logits.sum(dim=-1).isfinite().tolist()]


def penalize(
    logits: torch.Tensor, params: SamplingParams, seen_ids: Sequence[int], output_ids: list[int]
) -> None:
    """Repetition penalty over every id seen (prompt and output), presence and frequency
    penalties over the output, in place."""
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(seen_ids)), device=logits.device)
        values = logits[seen]
        logits[seen] = torch.where(
            values > 0, values / params.repetition_penalty, values * params.repetition_penalty
        )
    if (params.presence_penalty or params.frequency_penalty) and output_ids:
        ids, counts = torch.unique(
            torch.tensor(output_ids, device=logits.device), return_counts=True
        )
        logits[ids] -= params.presence_penalty + params.frequency_penalty * counts.float()


def forbid(logits: torch.Tensor, token_id: int) -> None:
    """Make `token_id` impossible (end-of-text before min_new_tokens), in place."""
    logits[token_id] = -math.inf


def draw(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """One token from temperature-scaled logits, restricted to the top k and to the top-p
    nucleus."""
    # A tiny temperature (or penalty) overflows the logits to inf, and softmax of inf is
    # NaN: clamp to the largest finite values, which keeps the order and so the choice.
    limit = torch.finfo(logits.dtype)
    logits = torch.nan_to_num(logits / params.temperature, posinf=limit.max, neginf=limit.min)
    if params.top_k:
        kth = logits.topk(min(params.top_k, logits.shape[-1])).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if params.top_p < 1.0:
        ordered, order = logits.sort(descending=True)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        drop = cumulative - ordered.softmax(dim=-1) >= params.top_p
        # Rounding can put the first token's "mass before it" above a tiny top_p.
        drop[0] = False
        logits = logits.clone()
        logits[order[drop]] = -math.inf
    probs = logits.softmax(dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def generator_for(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        # Any integer is a seed; torch takes 64 bits (found by schemathesis: -5e27).
        generator.manual_seed(seed % 2**64)
    return generator


def top_logprobs(
    logits: torch.Tensor, tokens: list[int], counts: list[int]
) -> list[tuple[float, dict[int, float]]]:
    """Per row of [N, vocab] (before any penalty): the chosen token's log-probability and the
    `counts[row]` most likely tokens with theirs."""
    logprobs = logits.log_softmax(dim=-1)
    out = []
    for row, (token, count) in enumerate(zip(tokens, counts, strict=True)):
        top = logprobs[row].topk(count)
        ranked = dict(zip(top.indices.tolist(), top.values.tolist(), strict=True))
        out.append((float(logprobs[row, token]), ranked))
    return out


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Log-probability of `targets[i]` under row i of [N, vocab]."""
    logprobs = logits.log_softmax(dim=-1)
    return [float(x) for x in logprobs.gather(1, targets[:, None]).squeeze(1).tolist()]
