"""The official `openai` client against the real `lmforge serve`: chat completions whole and
streamed (the default template's turns, `n` choices, log-probabilities), `--chat-template
FILE`, and completions with token-id prompts and the prompt's log-probabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.servers import API_KEY, Server

pytestmark = pytest.mark.integration

MESSAGES = [
    {"role": "system", "content": "You answer in one line."},
    {"role": "user", "content": "What does the list type hold?"},
]


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    template = tmp_path_factory.mktemp("chat") / "terse.jinja"
    template.write_text("{{ messages[-1]['content'] }}\nA:", encoding="utf-8")
    running = Server(tiny_model, "--chat-template", str(template))
    yield running
    assert running.stop() == 0, running.stderr()


def test_the_openai_client_chats_whole_and_streamed(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY)
    model = client.models.list().data[0].id
    whole = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_completion_tokens=8,
        temperature=0,
        n=2,
        logprobs=True,
        top_logprobs=3,
        extra_body={"ignore_eos": True},
    )
    assert whole.object == "chat.completion" and len(whole.choices) == 2
    first = whole.choices[0]
    assert first.message.role == "assistant" and first.finish_reason == "length"
    assert first.message.content == whole.choices[1].message.content  # greedy: the same
    assert first.logprobs is not None and len(first.logprobs.content) == 8
    assert all(len(t.top_logprobs) == 3 for t in first.logprobs.content)
    prompt = "What does the list type hold?\nA:"  # the --chat-template file's rendering
    prompt_tokens = server.client().post("/v1/tokenize", json={"text": prompt}).json()["count"]
    assert whole.usage.prompt_tokens == prompt_tokens and whole.usage.completion_tokens == 16
    pieces = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(pieces)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    print(f"chat: {first.message.content!r}; streamed in {len(chunks)} chunks: {text!r}")


def test_completions_take_token_ids_and_echo_their_logprobs(server: Server) -> None:
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY)
    model = client.models.list().data[0].id
    ids = server.client().post("/v1/tokenize", json={"text": "the cat sat"}).json()["tokens"]
    scored = client.completions.create(
        model=model, prompt=[ids, ids[:2]], max_tokens=0, echo=True, logprobs=2
    )
    assert [c.text for c in scored.choices] == ["the cat sat", "the cat"]
    logprobs = scored.choices[0].logprobs
    assert logprobs.token_logprobs[0] is None and all(lp < 0 for lp in logprobs.token_logprobs[1:])
    assert scored.usage.prompt_tokens == len(ids) + 2
    with pytest.raises(BadRequestError, match="maximum context length is 128 tokens"):
        client.completions.create(model=model, prompt=ids * 42, max_tokens=8)
