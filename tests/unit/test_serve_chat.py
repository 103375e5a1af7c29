"""Chat templates (the default plain-text turns, a model's own, `--chat-template FILE`),
the prompt's log-probabilities with `echo` (checked against transformers' own forward), `n`
choices, token-id prompts and the context-window refusal, in-process over a real engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.serve.chat import DEFAULT_STOPS, ChatTemplate, Reply, TemplateError, chat_template
from lmforge.serve.engine import Engine
from lmforge.serve.request import ContextExceeded, new_token_budget
from lmforge.serve.state import ModelInfo
from tests.unit.inprocess import app_state, client, running_engine

TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "  What is a list?  "},
    {"role": "assistant", "content": "A sequence."},
    {"role": "user", "content": "And a tuple?"},
]


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


def test_the_default_template_is_plain_text_turns_ending_with_the_cue(tiny_model: Path) -> None:
    template = chat_template(tiny_model)
    assert template.render(TURNS) == (
        "System: Be brief.\nUser: What is a list?\nAssistant: A sequence.\n"
        "User: And a tuple?\nAssistant:"
    )
    assert template.stops == DEFAULT_STOPS
    reply = Reply(template)
    assert [reply.piece(p) for p in (" ", " Imm", "utable")] == ["", "Imm", "utable"]


def test_a_models_own_template_and_an_override_file(tiny_model: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "eos_token": {"content": "<|endoftext|>"},
                "chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            }
        ),
        encoding="utf-8",
    )
    template = chat_template(own)
    assert template.render(TURNS[3:]) == "<user>And a tuple?<|endoftext|><assistant>"
    assert template.stops == () and not template.strip_leading
    override = tmp_path / "chat.jinja"
    override.write_text("{{ messages[-1]['content'] }} =>", encoding="utf-8")
    assert chat_template(own, str(override)).render(TURNS) == "And a tuple? =>"
    override.write_text("{% for %}", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid Jinja"):
        chat_template(own, str(override))
    with pytest.raises(ConfigError, match="cannot read the chat template"):
        chat_template(own, str(tmp_path / "missing.jinja"))
    # What a template raises for a request's messages is the request's error (400).
    strict = ChatTemplate("{{ raise_exception('roles must alternate') }}", "a test template")
    with pytest.raises(TemplateError, match=r"a test template.*roles must alternate"):
        strict.render(TURNS)


def test_the_budget_must_fit_the_context_unless_none_is_asked() -> None:
    assert new_token_budget(None, 16, 120, 128, 512) == 8
    assert new_token_budget(10, 16, 100, 128, 512) == 10
    with pytest.raises(ContextExceeded, match=r"128 tokens.*130 tokens \(120 in the prompt, 10"):
        new_token_budget(10, 16, 120, 128, 512)


def test_echo_returns_the_prompts_log_probabilities(
    served: tuple[Engine, ModelInfo], tiny_model: Path
) -> None:
    from transformers import GPT2LMHeadModel

    engine, _ = served
    ids = engine.encode("the cat sat on the mat")
    body = {"prompt": ids, "max_tokens": 0, "echo": True, "logprobs": 3}
    with client(app_state(served)) as test_client:
        answer = test_client.post("/v1/completions", json=body)
        refused = test_client.post("/v1/completions", json={**body, "echo": False})
    assert answer.status_code == 200, answer.text
    (choice,) = answer.json()["choices"]
    logprobs = choice["logprobs"]
    assert choice["text"] == engine.tokenizer.decode(ids) and choice["finish_reason"] == "length"
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert len(logprobs["tokens"]) == len(ids)
    model = GPT2LMHeadModel.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    for position, (logprob, top) in enumerate(
        zip(logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:], strict=True), 1
    ):
        assert logprob == pytest.approx(float(expected[position - 1, ids[position]]), abs=1e-4)
        assert len(top) <= 3  # (distinct tokens can decode to the same text)
        assert max(top.values()) == pytest.approx(float(expected[position - 1].max()), abs=1e-4)
    assert answer.json()["usage"] == {"prompt_tokens": 6, "completion_tokens": 0, "total_tokens": 6}
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_tokens"


def test_n_choices_token_prompts_and_the_context_window(served: tuple[Engine, ModelInfo]) -> None:
    body = {"prompt": [[5, 6, 7], [8, 9]], "max_tokens": 3, "n": 3, "seed": 7, "ignore_eos": True}
    with client(app_state(served)) as test_client:
        answer = test_client.post("/v1/completions", json=body)
        again = test_client.post("/v1/completions", json=body)
        over = test_client.post("/v1/completions", json={"prompt": [5] * 100, "max_tokens": 40})
        cut = test_client.post(
            "/v1/completions",
            json={"prompt": [5] * 100, "max_tokens": 40, "truncate_prompt_tokens": -1},
        )
        too_many = test_client.post("/v1/completions", json={"prompt": "x", "n": 9})
    assert answer.status_code == 200, answer.text
    choices = answer.json()["choices"]
    assert [c["index"] for c in choices] == list(range(6))
    assert answer.json()["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 18,
        "total_tokens": 23,
    }
    # Seeded: the same again, and the choices of one prompt differ (seed + i).
    assert [c["text"] for c in choices] == [c["text"] for c in again.json()["choices"]]
    assert len({c["text"] for c in choices[:3]}) > 1
    assert over.status_code == 400
    error = over.json()["error"]
    assert error["type"] == "context_length_exceeded"
    assert "128 tokens" in error["message"] and "140 tokens" in error["message"]
    assert cut.status_code == 200, cut.text
    assert cut.json()["usage"]["prompt_tokens"] == 128 - 40
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"


def test_chat_completions_whole_and_streamed(served: tuple[Engine, ModelInfo]) -> None:
    body = {
        "messages": TURNS,
        "max_completion_tokens": 6,
        "temperature": 0,
        "ignore_eos": True,
        "logprobs": True,
        "top_logprobs": 2,
    }
    with client(app_state(served)) as test_client:
        whole = test_client.post("/v1/chat/completions", json=body)
        streamed = test_client.post(
            "/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    (choice,) = answer["choices"]
    assert answer["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    assert all(len(t["top_logprobs"]) == 2 for t in choice["logprobs"]["content"])
    assert answer["usage"]["completion_tokens"] == len(choice["logprobs"]["content"])
    lines = [x[6:] for x in streamed.text.splitlines() if x.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == choice["message"]["content"]
    assert chunks[-1]["usage"] == answer["usage"] and chunks[-1]["choices"] == []
