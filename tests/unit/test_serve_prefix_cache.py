"""Prefix sharing in the KV cache: blocks copied out of one slot come back bit for bit in
another, the LRU stays under its byte budget, and on a real tiny model the engine's greedy
output, scores and zero-shot classification are the same with the cache on and off while
the hits and misses are counted (and exported on /metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from lmforge.config.serve import EngineSettings, ServeConfig
from lmforge.serve.engine import Engine
from lmforge.serve.kv_cache import SlotKVCache
from lmforge.serve.models import ModelInfo
from lmforge.serve.prefix_cache import BLOCK_TOKENS
from lmforge.serve.request import FinishReason, Kind, SamplingParams
from lmforge.serve.server import load
from tests.unit.inprocess import app_state, client

B = BLOCK_TOKENS
LAYERS, HEADS, DIM = 2, 3, 4
# Keys and values of one token: 2 tensors of [layers, heads, 1, dim] float32.
TOKEN_BYTES = 2 * LAYERS * HEADS * DIM * 4
BLOCK_BYTES = B * TOKEN_BYTES
GREEDY = SamplingParams(max_new_tokens=8, temperature=0, ignore_eos=True)


def filled_cache(budget_bytes: int) -> SlotKVCache:
    kv = SlotKVCache(3, 4 * B, LAYERS, HEADS, DIM, torch.device("cpu"), torch.float32, budget_bytes)
    torch.manual_seed(0)
    kv.keys.normal_()
    kv.values.normal_()
    return kv


def test_a_stored_prefix_is_copied_back_bit_for_bit_up_to_the_limit() -> None:
    kv = filled_cache(budget_bytes=100 * BLOCK_BYTES)
    prompt = list(range(2 * B + 5))  # two whole blocks and a partial one
    kv.store_prefix(0, prompt)
    assert kv.prefix is not None and kv.prefix.stats.bytes == (2 * B + 5) * TOKEN_BYTES
    # Another prompt sharing the two blocks, then going on differently.
    other = prompt[: 2 * B] + [999] * 7
    assert kv.load_prefix(1, other, limit=len(other) - 1) == 2 * B
    assert torch.equal(kv.keys[:, 1, :, : 2 * B], kv.keys[:, 0, :, : 2 * B])
    assert torch.equal(kv.values[:, 1, :, : 2 * B], kv.values[:, 0, :, : 2 * B])
    # One going on from the partial block reuses it too: a label after its context.
    assert kv.load_prefix(2, [*prompt, 3, 4], limit=len(prompt)) == len(prompt)
    assert torch.equal(kv.keys[:, 2, :, : len(prompt)], kv.keys[:, 0, :, : len(prompt)])
    # The prompt that is exactly the cached prefix keeps its last token to compute.
    assert kv.load_prefix(2, prompt[: 2 * B], limit=2 * B - 1) == 2 * B - 1
    # A limit under one block reuses nothing; a different first block finds nothing.
    assert kv.load_prefix(2, prompt, limit=B - 1) == 0
    assert kv.load_prefix(2, [7, *prompt[1:]], limit=len(prompt) - 1) == 0
    stats = kv.prefix.stats
    assert (stats.hit_requests, stats.miss_requests) == (3, 1)
    assert stats.hit_tokens == 2 * B + len(prompt) + 2 * B - 1
    assert stats.miss_tokens == (len(other) - 2 * B) + 2 + 1 + len(prompt)
    kv.store_prefix(1, other)  # its blocks are the cached ones: only its partial one is new
    kv.store_prefix(0, prompt)  # all cached
    assert stats.bytes == (2 * B + 5 + 7) * TOKEN_BYTES and stats.evictions == 0


def test_the_least_recently_used_blocks_go_first_under_the_budget() -> None:
    kv = filled_cache(budget_bytes=3 * BLOCK_BYTES)
    first, second = list(range(2 * B)), list(range(100, 100 + 2 * B))
    kv.store_prefix(0, first)
    kv.store_prefix(1, second)  # needs a block more than fits: first's last block goes
    assert kv.prefix is not None and kv.prefix.stats.bytes <= 3 * BLOCK_BYTES
    assert kv.prefix.stats.evictions == 1
    assert kv.load_prefix(2, [*second, 1], limit=2 * B) == 2 * B
    assert kv.load_prefix(2, [*first, 1], limit=2 * B) == B
    # first's block 0 was just used, so second's last block is the oldest now.
    kv.store_prefix(0, first)
    assert kv.load_prefix(2, [*first, 1], limit=2 * B) == 2 * B
    assert kv.load_prefix(2, [*second, 1], limit=2 * B) == B
    assert kv.prefix.stats.evictions == 2
    # A budget under one block keeps nothing and never fails.
    tiny = filled_cache(budget_bytes=BLOCK_BYTES - 1)
    tiny.store_prefix(0, first)
    assert tiny.prefix is not None and tiny.prefix.stats.bytes == 0
    assert tiny.load_prefix(1, first, limit=2 * B - 1) == 0


def test_a_cache_of_zero_bytes_is_off() -> None:
    kv = filled_cache(budget_bytes=0)
    kv.store_prefix(0, list(range(2 * B)))
    assert kv.prefix is None and kv.load_prefix(1, list(range(2 * B)), limit=2 * B - 1) == 0


@contextmanager
def engines(model: Path, **settings: int) -> Iterator[tuple[Engine, Engine]]:
    """The same model with the prefix cache off and on."""
    off = Engine(model, EngineSettings(kv_slots=4, prefix_cache_mb=0, **settings)).start()
    on = Engine(model, EngineSettings(kv_slots=4, prefix_cache_mb=16, **settings)).start()
    try:
        yield off, on
    finally:
        off.shutdown(drain_seconds=0)
        on.shutdown(drain_seconds=0)


def prompts_sharing_a_prefix(engine: Engine) -> list[list[int]]:
    shared = engine.encode("the cat sat on the mat. hello world, " * 4)[: 3 * B + 3]
    return [
        shared,
        shared[: 2 * B],  # exactly a cached prefix: its last token is computed again
        shared[: 2 * B],
        shared + engine.encode(" café"),
        shared + engine.encode(" naïve résumé the cat sat on the mat") * 2,  # past the cache
        engine.encode(" hello") + shared,  # another first block: a miss, then its own hit
        shared[: B - 1] + engine.encode(" hello"),  # too short to reuse a block: no lookup
    ]


@pytest.mark.parametrize("max_batch_tokens", [2048, 7])
def test_greedy_output_and_scores_are_the_same_with_the_cache_on_and_off(
    tiny_model: Path, max_batch_tokens: int
) -> None:
    with engines(tiny_model, max_batch_tokens=max_batch_tokens) as (off, on):
        prompts = prompts_sharing_a_prefix(on)
        for prompt in prompts:
            outputs = [e.run(e.request(prompt, Kind.GENERATE, GREEDY)) for e in (off, on)]
            assert outputs[0].token_ids == outputs[1].token_ids
            assert outputs[1].finish_reason is FinishReason.LENGTH
            scored = [
                e.run(e.request([*prompt, 5, 6], Kind.SCORE, score_from=len(prompt)))
                for e in (off, on)
            ]
            assert scored[1].scores == pytest.approx(scored[0].scores, abs=1e-5)
        stats = on.snapshot().prefix
    assert off.snapshot().prefix.hit_requests == 0
    # Each prompt's generation then its score request, but for the last's; two first misses.
    assert (stats.hit_requests, stats.miss_requests) == (10, 2) and stats.hit_tokens > 10 * B
    assert stats.bytes > 0 and stats.evictions == 0


def test_mean_pooled_embeddings_and_echo_scores_compute_every_token(tiny_model: Path) -> None:
    """They read every position's hidden state, so they never start from the cache."""
    with engines(tiny_model) as (off, on):
        prompt = prompts_sharing_a_prefix(on)[0]
        on.run(on.request(prompt, Kind.PREFILL))
        hits = on.snapshot().prefix.hit_requests
        for engine in (off, on):
            assert engine.run(engine.request(prompt, Kind.PREFILL)).finish_reason is (
                FinishReason.STOP
            )
        embedded = [e.run(e.request(prompt, Kind.EMBED)).embedding for e in (off, on)]
        echoed = [e.run(e.request(prompt, Kind.SCORE, score_from=1)).scores for e in (off, on)]
        assert embedded[1] == pytest.approx(embedded[0], abs=1e-5)
        assert echoed[1] == pytest.approx(echoed[0], abs=1e-5)
        assert on.snapshot().prefix.hit_requests == hits + 1  # the second prefill only


@contextmanager
def served(model: Path, prefix_cache_mb: int) -> Iterator[tuple[Engine, ModelInfo]]:
    config = ServeConfig(model=[str(model)], kv_slots=4, prefix_cache_mb=prefix_cache_mb)
    engine, info = load(config, str(model))
    engine.start()
    try:
        yield engine, info
    finally:
        engine.shutdown(drain_seconds=0)


def test_zero_shot_classification_is_the_same_and_scores_each_text_once(tiny_model: Path) -> None:
    body = {
        "text": ["the cat sat on the mat. " * 6, "hello world, café naïve résumé " * 4],
        "labels": ["sports", "politics", "the cat", "world news"],
    }
    answers = {}
    for mb in (0, 16):
        with served(tiny_model, mb) as running, client(app_state(running)) as http:
            answer = http.post("/v1/classify", json=body)
            assert answer.status_code == 200, answer.text
            answers[mb] = answer.json()["results"]
            metrics = http.get("/metrics").text
            stats, name = running[0].snapshot().prefix, running[1].name
    for cold, warm in zip(answers[0], answers[16], strict=True):
        assert warm["label"] == cold["label"]
        assert warm["scores"] == pytest.approx(cold["scores"], abs=1e-5)
    # Two prefills miss; every label request of both texts hits its context.
    assert (stats.hit_requests, stats.miss_requests) == (8, 2)
    assert f'lmforge_prefix_cache_requests{{model="{name}",result="hit"}} 8.0' in metrics
    assert f'lmforge_prefix_cache_bytes{{model="{name}"}} {float(stats.bytes)}' in metrics
