"""Bodies → engine requests: `SamplingParams.from_body` clamps every limit together (the
/v1/completions max_tokens=1000, min_tokens=600 regression), OpenAI extras never override a
declared field, and the task routes use the prompts of `lmforge.prompts`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge import prompts
from lmforge.serve import schemas as s
from lmforge.serve.engine import Engine
from lmforge.serve.request import SamplingParams
from lmforge.serve.state import ModelInfo
from tests.unit.inprocess import app_state, client, running_engine


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


def test_the_minimum_is_clamped_with_the_budget_under_the_cap() -> None:
    over_cap = SamplingParams.from_body({"max_new_tokens": 1000, "min_new_tokens": 600}, 512)
    assert (over_cap.max_new_tokens, over_cap.min_new_tokens) == (512, 512)
    assert over_cap.problems() == []
    over_max = SamplingParams.from_body({"max_new_tokens": 10, "min_new_tokens": 20}, 512)
    assert (over_max.max_new_tokens, over_max.min_new_tokens) == (10, 10)
    assert SamplingParams.from_body({"stop": "\n"}, 512).stop == ("\n",)
    assert SamplingParams.from_body({}, 512) == SamplingParams()


def test_openai_bodies_use_their_own_spelling_and_ignore_extras() -> None:
    body = s.CompletionRequest.model_validate(
        {"prompt": "x", "max_tokens": 1000, "min_tokens": 600, "logprobs": 2, "stop": ["."]}
        | {"max_new_tokens": 3, "user": "someone"}
    )
    params = SamplingParams.from_body(body.sampling(), 512)
    assert (params.max_new_tokens, params.min_new_tokens) == (512, 512)
    assert (params.logprobs, params.stop) == (2, (".",))


def test_completions_clamp_max_and_min_tokens_to_the_cap(served: tuple[Engine, ModelInfo]) -> None:
    """Was 400 "min_new_tokens=600 exceeds max": the cap clamped max_tokens only. Under a
    cap the context holds, both are clamped to it; over the context, /v1/completions says so
    (vLLM's 400) while /v1/generate still stops at the window."""
    body = {"prompt": "the", "max_tokens": 1000, "min_tokens": 600, "temperature": 0}
    with client(app_state(served, max_new_tokens=40)) as test_client:
        capped = test_client.post("/v1/completions", json=body)
    with client(app_state(served)) as test_client:
        answer = test_client.post("/v1/completions", json=body)
        native = test_client.post(
            "/v1/generate", json={"prompt": "the", "max_new_tokens": 1000, "min_new_tokens": 600}
        )
    assert capped.status_code == 200, capped.text
    assert capped.json()["choices"][0]["finish_reason"] == "length"
    assert capped.json()["usage"]["completion_tokens"] == 40
    assert native.status_code == 200, native.text
    # The tiny model's 128-token context ends the generation before the cap of 512 does.
    assert native.json()["finish_reason"] == "length"
    assert 0 < native.json()["usage"]["completion_tokens"] <= 512
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "maximum context length is 128 tokens" in message and "513 tokens" in message


def test_summaries_are_asked_for_in_the_training_format(served: tuple[Engine, ModelInfo]) -> None:
    engine, _ = served
    text = "the cat sat on the mat."
    with client(app_state(served)) as test_client:
        answer = test_client.post("/v1/summarize", json={"text": text, "max_new_tokens": 4})
    assert answer.status_code == 200, answer.text
    assert prompts.SUMMARY_CUE == "\nTL;DR:\n"
    prompt = engine.encode(text) + engine.encode(prompts.SUMMARY_CUE)
    assert answer.json()["usage"]["prompt_tokens"] == len(prompt)
    assert "\n" not in answer.json()["summary"]


def test_classification_scores_labels_after_the_shared_template(
    served: tuple[Engine, ModelInfo],
) -> None:
    body = s.ClassifyRequest.model_validate({"text": "x", "labels": ["a", "b"]})
    assert body.template == prompts.CLASSIFY_TEMPLATE == "Text: {text}\nCategory:"
    labels = ["sports", "politics"]
    with client(app_state(served)) as test_client:
        answer = test_client.post("/v1/classify", json={"text": "the cat sat", "labels": labels})
    (result,) = answer.json()["results"]
    assert sum(result["scores"].values()) == pytest.approx(1.0)
    assert result["label"] == max(result["scores"], key=result["scores"].get)
