"""The bounds of one call, in-process: rate-limit buckets that a refused call gets back,
texts cut to what the context can use before they are encoded, refused calls (an invalid
body, an over-long prompt) spending nothing, every prompt charged its new tokens, and a batch
larger than the engine holds served through the call's window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.serve.engine import Engine
from lmforge.serve.http.tokens import Keep, char_bound, cut, longest_token_chars
from lmforge.serve.limits import Ledger, RateLimited, RateLimiter
from lmforge.serve.state import ModelInfo
from tests.unit.inprocess import app_state, client, running_engine


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


def test_a_refused_charge_takes_nothing_and_a_refund_gives_back() -> None:
    limiter = RateLimiter(requests_per_minute=0, tokens_per_minute=100)
    ledger = Ledger(limiter, "k")
    ledger.charge("tokens", 60)
    with pytest.raises(RateLimited):
        ledger.charge("tokens", 60)  # over what is left: takes nothing
    ledger.charge("tokens", 40)
    assert ledger.taken == {"tokens": 100}
    ledger.refund()
    assert ledger.taken == {}
    limiter.charge("k", "tokens", 100)  # the whole minute's budget is back
    limiter.refund("k", "tokens", 10_000)  # never above one minute's worth
    limiter.charge("k", "tokens", 100)
    with pytest.raises(RateLimited):
        limiter.charge("k", "tokens", 1)


def test_an_unlimited_budget_records_and_refunds_harmlessly() -> None:
    ledger = Ledger(RateLimiter(0, 0), "k")
    ledger.charge("requests", 1)
    ledger.refund()


def test_a_text_over_the_bound_cannot_fit_and_one_that_fits_is_never_cut(
    served: tuple[Engine, ModelInfo],
) -> None:
    engine, _ = served
    bound = char_bound(engine)
    assert bound == longest_token_chars(engine) * (engine.max_seq_len + 1)
    # The densest text: the longest token, over and over.
    vocab = engine.tokenizer.get_vocab(with_added_tokens=True)
    longest = max(vocab, key=len)
    dense = engine.tokenizer.decode([vocab[longest]], skip_special_tokens=False) * (
        bound // len(longest) + 1
    )
    assert len(engine.encode(cut(dense, bound, Keep.HEAD))) > engine.max_seq_len
    fitting = "the cat sat. " * 9
    assert len(engine.encode(fitting)) < engine.max_seq_len
    assert cut(fitting, bound, Keep.HEAD) == cut(fitting, bound, Keep.TAIL) == fitting
    assert cut("abcdef", 2, Keep.HEAD) == "ab" and cut("abcdef", 2, Keep.TAIL) == "ef"


def test_refused_calls_spend_neither_requests_nor_tokens(
    served: tuple[Engine, ModelInfo],
) -> None:
    state = app_state(served, rate_requests=3, rate_tokens=600)
    too_long = {"prompt": ["the", "the cat " * 100], "max_tokens": 100}
    with client(state) as test_client:
        refused = [test_client.post("/v1/completions", json={"prompt": 1}) for _ in range(5)]
        refused += [test_client.post("/v1/completions", json=too_long) for _ in range(5)]
        assert [a.status_code for a in refused] == [400] * 10, refused[-1].text
        fitting = {"prompt": "the", "max_tokens": 120}
        assert [
            test_client.post("/v1/completions", json=fitting).status_code for _ in range(3)
        ] == [
            200,
            200,
            200,
        ]


def test_every_prompt_is_charged_its_new_tokens(served: tuple[Engine, ModelInfo]) -> None:
    with client(app_state(served, rate_tokens=300)) as test_client:
        body = {"prompt": ["the"] * 3, "max_tokens": 100}
        three = test_client.post("/v1/completions", json=body)
        # 3 × (1 + 100) tokens, one over the budget (charged once, it was 103).
        assert three.status_code == 429, three.text
        two = test_client.post("/v1/completions", json={**body, "prompt": ["the"] * 2})
        assert two.status_code == 200, two.text
    assert "tokens per minute" in three.json()["error"]["message"]


def test_a_batch_over_what_the_engine_holds_is_served(served: tuple[Engine, ModelInfo]) -> None:
    engine, _ = served
    holds = engine.settings.max_queue + engine.settings.kv_slots
    with client(app_state(served)) as test_client:
        over = test_client.post("/v1/embeddings", json={"input": ["the"] * (holds + 1)})
    assert over.status_code == 200, over.text
    assert len(over.json()["data"]) == holds + 1


def test_require_checks_without_taking() -> None:
    limiter = RateLimiter(requests_per_minute=0, tokens_per_minute=100)
    limiter.require("k", "tokens", 100)  # all of it is there; nothing is taken
    limiter.charge("k", "tokens", 100)
    with pytest.raises(RateLimited):
        limiter.require("k", "tokens", 1)


def test_an_unaffordable_flood_is_refused_before_it_is_encoded(
    served: tuple[Engine, ModelInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text has at least len / longest-token tokens, so a tokenize flood or a list of
    prompts the budget cannot cover is a 429 without any tokenizer time (the tokenizer is the
    process boundary watched here)."""
    engine, _ = served
    calls: list[int] = []
    real = engine.tokenizer.encode_batch

    def counted(texts: list[str]) -> object:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(engine.tokenizer, "encode_batch", counted)
    with client(app_state(served, rate_tokens=3000)) as test_client:
        flood = "the cat sat on the mat " * 30_000
        assert test_client.post("/v1/tokenize", json={"text": flood}).status_code == 429
        prompts = {"prompt": ["hello"] * 64, "max_tokens": 64}
        assert test_client.post("/v1/completions", json=prompts).status_code == 429
        assert calls == []
        assert test_client.post("/v1/tokenize", json={"text": "hello"}).status_code == 200
        assert calls == [1]
