"""Hostile requests against a real `lmforge serve`: bodies built to freeze the event loop,
to spend more than the caller's token budget, to crash the server with text that is not
Unicode, and batches larger than the engine holds. Each case is one of issue 17's attacks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import API_KEY, Server

pytestmark = pytest.mark.integration

# A probe answers within this while an attack runs (it answers in milliseconds when idle;
# each attack below blocked it for seconds before the fix).
PROBE_BOUND_SECONDS = 1.0
KEYS = [f"hostile-key-{i}-0123456789abcdef" for i in range(6)]


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[Server]:
    running = Server(tiny_model, "--request-timeout", "60")
    yield running
    assert running.stop() == 0, running.stderr()


@contextmanager
def probing(server: Server) -> Iterator[list[float]]:
    """/healthz asked every 50 ms while the block runs; yields the latencies (a probe that
    got no answer within 30 s counts as 30 s)."""
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    assert client.get("/healthz").status_code == 200
                    latencies.append(time.perf_counter() - started)
                except httpx.TimeoutException:
                    latencies.append(30.0)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        yield latencies
    finally:
        stop.set()
        prober.join()


def post_raw(client: httpx.Client, path: str, body: dict[str, object]) -> httpx.Response:
    """POST `body` as JSON with non-ASCII escaped, so lone surrogates travel as `\\udfff`."""
    headers = {"Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def test_a_huge_classify_template_is_refused_at_once_and_probes_keep_answering(
    server: Server,
) -> None:
    """Issue 17: 64 texts with a 900 KB template blocked the event loop for 141 s."""
    body = {
        "text": [f"text number {i}" for i in range(64)],
        "labels": ["a", "b"],
        "template": "{text}" + "x" * 900_000,
    }
    with probing(server) as latencies, server.client(timeout=30) as client:
        time.sleep(0.2)
        started = time.perf_counter()
        answer = client.post("/v1/classify", json=body)
        took = time.perf_counter() - started
        time.sleep(0.2)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "template"
    assert took < 5, took
    assert max(latencies) < PROBE_BOUND_SECONDS, latencies


def test_a_template_longer_than_the_context_is_refused_naming_it(server: Server) -> None:
    body = {"text": "hi", "labels": ["a", "b"], "template": "{text}" + " the" * 200}
    with server.client() as client:
        answer = client.post("/v1/classify", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["param"] == "template" and "128-token context" in error["message"]


def test_megabyte_texts_are_encoded_off_the_event_loop(server: Server) -> None:
    """Issue 17: one encode of up to 1 MB ran on the event loop (about 2 s each)."""
    text = "a " * 495_000
    bodies = [
        ("/v1/tokenize", {"text": text}),
        ("/v1/generate", {"prompt": text, "max_new_tokens": 1}),
        ("/v1/completions", {"prompt": text, "max_tokens": 1}),
        ("/v1/summarize", {"text": text}),
        ("/v1/match", {"text_a": text, "text_b": "the cat"}),
        ("/v1/classify", {"text": text, "labels": ["a", "b"]}),
    ]

    def send(route: tuple[str, dict[str, object]]) -> tuple[int, float]:
        with server.client(timeout=120) as client:
            started = time.perf_counter()
            status = client.post(route[0], json=route[1]).status_code
            return status, time.perf_counter() - started

    with probing(server) as latencies, ThreadPoolExecutor(len(bodies) * 2) as pool:
        time.sleep(0.2)
        answers = list(pool.map(send, bodies * 2))
        time.sleep(0.2)
    statuses = [status for status, _ in answers]
    # tokenize counts every token; generation refuses a prompt too long for the context;
    # the tasks cut the text to what the context can use.
    assert statuses == [200, 422, 400, 200, 200, 200] * 2, answers
    assert max(latencies) < PROBE_BOUND_SECONDS, latencies


@pytest.fixture(scope="module")
def rated(tiny_model: Path) -> Iterator[Server]:
    """A 3,000 tokens/min budget per key, as in the issue; every test uses its own key."""
    running = Server(
        tiny_model,
        *("--rate-tokens", "3000", "--rate-requests", "30", "--request-timeout", "60"),
        env={"LMFORGE_API_KEYS": ",".join([API_KEY, *KEYS])},
    )
    yield running
    assert running.stop() == 0, running.stderr()


def test_many_prompts_are_charged_for_every_prompt_and_its_new_tokens(rated: Server) -> None:
    """Issue 17: 3 requests of 90 prompts processed 32,940 tokens under a 3,000 budget."""
    body = {"prompt": ["the cat"] * 90, "max_tokens": 120, "ignore_eos": True}
    with rated.client(key=KEYS[0]) as client:
        answers = [client.post("/v1/completions", json=body) for _ in range(3)]
        processed = sum(a.json()["usage"]["total_tokens"] for a in answers if a.is_success)
        assert [a.status_code for a in answers] == [429] * 3, processed
        assert all(a.json()["error"]["type"] == "rate_limit_error" for a in answers)
        # Refused, they spent nothing: a request within the budget still runs.
        fitting = {"prompt": ["the cat"] * 20, "max_tokens": 100, "ignore_eos": True}
        assert client.post("/v1/completions", json=fitting).status_code == 200


def test_tokenize_is_charged_for_what_it_encodes(rated: Server) -> None:
    """Issue 17: two tokenize calls processed 600,002 tokens under a 3,000 budget."""
    text = "a " * 150_000 + "a"
    with rated.client(key=KEYS[1]) as client:
        answers = [client.post("/v1/tokenize", json={"text": text}) for _ in range(2)]
        counted = sum(a.json()["count"] for a in answers if a.is_success)
        assert [a.status_code for a in answers] == [429, 429], counted
        small = client.post("/v1/tokenize", json={"text": "the cat"})
    assert small.status_code == 200 and small.json()["count"] > 0


def test_refused_requests_spend_no_budget(rated: Server) -> None:
    """Bodies the server refuses (a prompt over the context after others were charged, an
    invalid field) give back the request and the tokens they were charged."""
    too_long = {"prompt": ["the cat", "the cat " * 100], "max_tokens": 100}
    invalid = {"prompt": "the cat", "max_tokens": 0}
    with rated.client(key=KEYS[2]) as client:
        statuses = [client.post("/v1/completions", json=too_long).status_code for _ in range(15)]
        statuses += [client.post("/v1/completions", json=invalid).status_code for _ in range(20)]
        assert statuses == [400] * 35, statuses
        fitting = {"prompt": ["the cat"] * 20, "max_tokens": 120, "ignore_eos": True}
        assert client.post("/v1/completions", json=fitting).status_code == 200


# Every text field of every route, holding a lone surrogate: the field it is refused for.
SURROGATE = "bad \udfff text"
SURROGATE_BODIES = [
    ("/v1/tokenize", {"text": SURROGATE}, 422, "text"),
    ("/v1/generate", {"prompt": SURROGATE}, 422, "prompt"),
    ("/v1/generate", {"prompt": "ok", "stop": [SURROGATE]}, 422, "stop"),
    ("/v1/completions", {"prompt": SURROGATE}, 400, "prompt"),
    ("/v1/completions", {"prompt": ["ok", SURROGATE]}, 400, "prompt.1"),
    ("/v1/completions", {"prompt": "ok", "stop": SURROGATE}, 400, "stop"),
    ("/v1/embeddings", {"input": SURROGATE}, 400, "input"),
    ("/v1/embeddings", {"input": ["ok", SURROGATE]}, 400, "input.1"),
    ("/v1/classify", {"text": SURROGATE, "labels": ["a", "b"]}, 422, "text"),
    ("/v1/classify", {"text": ["ok", SURROGATE], "labels": ["a", "b"]}, 422, "text.1"),
    ("/v1/classify", {"text": "ok", "labels": ["a", SURROGATE]}, 422, "labels.1"),
    (
        "/v1/classify",
        {"text": "ok", "labels": ["a", "b"], "template": "{text}\udfff"},
        422,
        "template",
    ),
    ("/v1/match", {"text_a": SURROGATE, "text_b": "ok"}, 422, "text_a"),
    ("/v1/match", {"query": "ok", "candidates": ["ok", SURROGATE]}, 422, "candidates.1"),
    ("/v1/summarize", {"text": SURROGATE}, 422, "text"),
]


@pytest.mark.parametrize(("path", "body", "status", "param"), SURROGATE_BODIES)
def test_a_lone_surrogate_is_refused_naming_the_field(
    server: Server, path: str, body: dict[str, object], status: int, param: str
) -> None:
    """Issue 17: a lone surrogate in /v1/tokenize `text` or a completions `prompt` was a 500."""
    with server.client() as client:
        answer = post_raw(client, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    # Our validator says where the surrogate is; pydantic's own string constraints refuse
    # one first ("unable to parse raw data as a unicode string").
    assert error["param"] == param and "unicode" in error["message"].lower(), error


@pytest.fixture(scope="module")
def small(tiny_model: Path) -> Iterator[Server]:
    """Room for 6 engine requests at once: 2 running (KV slots) and 4 queued."""
    running = Server(tiny_model, "--max-queue", "4", "--kv-slots", "2")
    yield running
    assert running.stop() == 0, running.stderr()


# Batches the schema allows, of more engine requests than the engine holds (6 on `small`,
# 96 on `server`): each body and how many answers it gets.
LARGE_BATCHES = [
    ("/v1/classify", {"text": ["a", "b", "c", "d"], "labels": ["x", "y"]}, 4),
    ("/v1/match", {"query": "q", "candidates": list("abcdefgh")}, 8),
    ("/v1/embeddings", {"input": list("abcdefg")}, 7),
    ("/v1/completions", {"prompt": list("abcdefg"), "max_tokens": 2}, 7),
]


def answers(path: str, answer: httpx.Response) -> int:
    body = answer.json()
    key = {"/v1/classify": "results", "/v1/match": "ranking", "/v1/completions": "choices"}
    return len(body[key.get(path, "data")])


@pytest.mark.parametrize(("path", "body", "count"), LARGE_BATCHES)
def test_a_batch_larger_than_the_engine_holds_is_served_through_a_window(
    small: Server, path: str, body: dict[str, object], count: int
) -> None:
    """Issue 17: such batches were answered 429 'retry shortly' forever."""
    with small.client() as client:
        answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert answers(path, answer) == count


def test_the_issues_largest_batches_are_served(server: Server) -> None:
    """Issue 17's cases against a queue of 96: classify 64 texts × 50 labels, match with 256
    candidates, embeddings with 256 inputs."""
    words = [f"w{i}" for i in range(256)]
    batches = [
        ("/v1/classify", {"text": words[:64], "labels": words[:50]}, 64),
        ("/v1/match", {"query": "q", "candidates": words}, 256),
        ("/v1/embeddings", {"input": words}, 256),
    ]
    with server.client(timeout=120) as client:
        for path, body, count in batches:
            answer = client.post(path, json=body)
            assert answer.status_code == 200, (path, answer.text)
            assert answers(path, answer) == count
