"""`lmforge serve` as a real subprocess: every route through httpx and the `openai` client,
auth on every route, limits (413/422/429/504), disconnects, SIGTERM drain and hot reload."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lmforge.serve.http.app import create_app
from lmforge.serve.http.deps import OPEN_ROUTES
from tests.conftest import build_model_dir
from tests.integration.servers import (
    ADMIN_KEY,
    API_KEY,
    OTHER_KEY,
    Server,
    steady_load,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tiny_model: Path):
    running = Server(tiny_model, "--max-body-bytes", "20000", "--request-timeout", "30")
    yield running
    assert running.stop() == 0, running.stderr()


@pytest.fixture(scope="module")
def long_context_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small but with a 1024-token context, so one request runs for seconds."""
    path = tmp_path_factory.mktemp("long") / "model"
    return build_model_dir(path, n_layer=4, n_embd=256, n_positions=1024)


def test_generate_returns_text_and_usage(server: Server) -> None:
    with server.client() as client:
        body = {"prompt": "the cat", "max_new_tokens": 8, "temperature": 0, "ignore_eos": True}
        answer = client.post("/v1/generate", json=body)
        again = client.post("/v1/generate", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 8
    assert result["text"] == again.json()["text"]
    assert answer.headers["x-request-id"]


def test_generate_streams_server_sent_events(server: Server) -> None:
    body = {"prompt": "the cat", "max_new_tokens": 12, "temperature": 0, "stream": True}
    body["ignore_eos"] = True
    with server.client() as client, client.stream("POST", "/v1/generate", json=body) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(x[6:]) for x in answer.iter_lines() if x.startswith("data: ")]
    assert len(events) > 2 and events[-1]["finish_reason"] == "length"
    plain = server.client().post("/v1/generate", json={**body, "stream": False}).json()
    assert "".join(e["text"] for e in events) == plain["text"]


def test_the_openai_client_works_unchanged(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY)
    model = client.models.list().data[0].id
    completion = client.completions.create(
        model=model,
        prompt="hello world",
        max_tokens=6,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 6
    pieces = client.completions.create(
        model=model,
        prompt="hello world",
        max_tokens=6,
        temperature=0,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    assert "".join(chunk.choices[0].text for chunk in pieces if chunk.choices) == (
        completion.choices[0].text
    )
    vectors = client.embeddings.create(model=model, input=["the cat", "the mat"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 64
    norm = sum(v * v for v in vectors.data[0].embedding)
    assert norm == pytest.approx(1.0, abs=1e-4)


def test_openai_stream_ends_with_done_and_usage(server: Server) -> None:
    body = {
        "prompt": "the",
        "max_tokens": 4,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    with server.client() as client, client.stream("POST", "/v1/completions", json=body) as answer:
        lines = [x[6:] for x in answer.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    assert json.loads(lines[-2])["usage"]["completion_tokens"] == 4


def test_embeddings_in_base64_match_floats(server: Server) -> None:
    with server.client() as client:
        floats = client.post("/v1/embeddings", json={"input": "the cat"}).json()
        packed = client.post(
            "/v1/embeddings", json={"input": "the cat", "encoding_format": "base64"}
        ).json()
    decoded = array("f", base64.b64decode(packed["data"][0]["embedding"])).tolist()
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_classify_match_summarize_tokenize_models(server: Server) -> None:
    with server.client() as client:
        labels = ["sports", "politics", "science"]
        classified = client.post(
            "/v1/classify", json={"text": ["the cat sat", "hello world"], "labels": labels}
        )
        pair = client.post("/v1/match", json={"text_a": "the cat", "text_b": "the cat"})
        ranked = client.post(
            "/v1/match",
            json={"query": "the cat", "candidates": ["hello", "the cat"], "threshold": 0.99},
        )
        summary = client.post("/v1/summarize", json={"text": "the cat sat on the mat."})
        tokens = client.post("/v1/tokenize", json={"text": "the cat"})
        models = client.get("/v1/models")
    results = classified.json()["results"]
    assert [sum(r["scores"].values()) for r in results] == pytest.approx([1.0, 1.0])
    assert all(r["label"] == max(r["scores"], key=r["scores"].get) for r in results)
    assert pair.json()["similarity"] == pytest.approx(1.0, abs=1e-5)
    ranking = ranked.json()["ranking"]
    assert ranking[0]["text"] == "the cat" and ranking[0]["match"] is True
    assert ranking[1]["match"] is False
    assert summary.status_code == 200 and "usage" in summary.json()
    assert tokens.json()["count"] == len(tokens.json()["tokens"]) > 0
    card = models.json()["data"][0]
    assert card["context_length"] == 128 and len(card["sha256"]) == 64


def test_every_route_but_the_probes_needs_a_key(server: Server) -> None:
    """Enumerates the app's routes, so a new route cannot slip through unprotected."""
    routes = [
        (method, route.path)
        for route in create_app(None).routes
        for method in getattr(route, "methods", ()) or ()
        if method in ("GET", "POST")
    ]
    assert len(routes) >= 14
    with server.client(key=None) as anonymous, server.client(key="wrong-key-0123456789") as wrong:
        for method, path in routes:
            if path in OPEN_ROUTES or path == "/metrics":
                continue
            for client in (anonymous, wrong):
                answer = client.request(method, path, json={})
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.json()["error"]["type"] == "authentication_error"
        assert anonymous.get("/ping").json() == {"success": True, "message": "ready"}
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
    with server.client(key=OTHER_KEY) as other:
        assert other.post("/v1/tokenize", json={"text": "x"}).status_code == 200


def test_errors_have_one_shape_and_the_right_status(server: Server) -> None:
    with server.client() as client:
        too_big = client.post("/v1/generate", content=b"x" * 30000)
        too_long = client.post("/v1/generate", json={"prompt": "the cat " * 200})
        native_invalid = client.post("/v1/generate", json={"prompt": "x", "temperature": -1})
        openai_invalid = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 0})
        unknown = client.get("/v1/nothing")
        unknown_field = client.post("/v1/generate", json={"prompt": "x", "tempreature": 1})
    assert too_big.status_code == 413
    assert too_long.status_code == 422
    assert "the context holds 128" in too_long.json()["error"]["message"]
    assert native_invalid.status_code == 422
    assert native_invalid.json()["error"]["param"] == "temperature"
    assert openai_invalid.status_code == 400
    assert unknown.status_code == 404
    assert unknown_field.status_code == 422
    for answer in (too_big, too_long, native_invalid, openai_invalid, unknown):
        assert set(answer.json()["error"]) == {"type", "message", "param"}
        assert "Traceback" not in answer.text


def test_a_client_that_disconnects_aborts_its_generation(long_context_model: Path) -> None:
    server = Server(long_context_model, "--kv-slots", "2")
    try:
        body = {"prompt": "the", "max_new_tokens": 1000, "ignore_eos": True, "stream": True}
        with server.client() as client, client.stream("POST", "/v1/generate", json=body) as s:
            lines = s.iter_lines()
            first = next(lines)
            assert server.metric("lmforge_running_batch_size") == 1, (first, list(lines)[-3:])
        plain = {**body, "stream": False}
        with pytest.raises(httpx.ReadTimeout), server.client(timeout=0.5) as impatient:
            impatient.post("/v1/generate", json=plain)
        wait_for(
            lambda: server.metric("lmforge_running_batch_size") == 0,
            "the abandoned generation to be aborted",
            timeout=10,
        )
    finally:
        assert server.stop() == 0


def test_overload_and_deadlines(long_context_model: Path) -> None:
    server = Server(
        long_context_model,
        *("--kv-slots", "1", "--max-queue", "2", "--request-timeout", "1.5"),
    )
    try:
        long = {"prompt": "the", "max_new_tokens": 1000, "ignore_eos": True}

        def send(_: int) -> httpx.Response:
            with server.client() as client:
                return client.post("/v1/generate", json=long)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))
        statuses = sorted(a.status_code for a in answers)
        overloaded = [a for a in answers if a.status_code == 429]
        assert overloaded and all(a.json()["error"]["type"] == "overloaded" for a in overloaded)
        assert all(a.headers["retry-after"] for a in overloaded)
        assert 504 in statuses and set(statuses) <= {200, 429, 504}, statuses
        with server.client() as client:  # recovers at once
            recovered = client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 8})
            assert recovered.status_code == 200, recovered.text
        assert server.metric('lmforge_rejections_total{reason="overloaded"}') >= 1
    finally:
        server.stop()


def test_per_key_rate_limits(tiny_model: Path) -> None:
    server = Server(tiny_model, "--rate-requests", "3", "--rate-tokens", "600")
    try:
        short = {"prompt": "the", "max_new_tokens": 2}
        with server.client() as client:
            assert [client.post("/v1/generate", json=short).status_code for _ in range(3)] == [
                200,
                200,
                200,
            ]
            limited = client.post("/v1/generate", json=short)
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert int(limited.headers["retry-after"]) >= 1
        with server.client(key=OTHER_KEY) as other:  # its own buckets
            long = {"prompt": "the", "max_new_tokens": 500}
            assert other.post("/v1/generate", json=long).status_code == 200
            over = other.post("/v1/generate", json=long)
        assert over.status_code == 429 and "tokens per minute" in over.json()["error"]["message"]
    finally:
        server.stop()


def test_sigterm_drains_accepted_requests_and_exits_zero(long_context_model: Path) -> None:
    server = Server(long_context_model, "--drain-seconds", "60")
    body = {"prompt": "the", "max_new_tokens": 300, "ignore_eos": True}
    results: list[int] = []

    def send() -> None:
        with server.client() as client:
            results.append(client.post("/v1/generate", json=body).status_code)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    wait_for(lambda: server.metric("lmforge_running_batch_size") == 4, "all 4 requests to start")
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: server.readiness() == 503, "/readyz to turn 503 after SIGTERM", timeout=10)
    with server.client() as client:
        assert client.post("/v1/generate", json=body).status_code == 503
    for sender in senders:
        sender.join()
    assert results == [200, 200, 200, 200]
    assert server.process.wait(timeout=60) == 0


def test_hot_reload_under_load_fails_no_request(server: Server) -> None:
    with steady_load(server) as failures:
        time.sleep(0.5)
        with server.client(key=API_KEY) as user:
            assert user.post("/admin/reload").status_code == 401
        with server.client(key=ADMIN_KEY) as admin:
            reloaded = admin.post("/admin/reload")
        time.sleep(0.5)
    assert reloaded.status_code == 200, reloaded.text
    assert failures == []


def test_metrics_are_exported(server: Server) -> None:
    text = server.client(key=None).get("/metrics").text
    for name in (
        "lmforge_requests_total",
        "lmforge_request_duration_seconds_bucket",
        "lmforge_time_to_first_token_seconds_bucket",
        "lmforge_time_per_output_token_seconds_bucket",
        "lmforge_queue_time_seconds_bucket",
        "lmforge_queue_size",
        "lmforge_kv_slot_usage",
        "lmforge_model_info",
    ):
        assert name in text
    assert 'le="600.0"' in text


def test_listening_beyond_loopback_without_keys_is_refused(tiny_model: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("serve", str(tiny_model), "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr


def test_bench_measures_the_server(server: Server, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    out = tmp_path / "bench"
    result = run_cli(
        "bench",
        server.url,
        *("--concurrency", "1,4", "--requests", "8", "--max-new-tokens", "8"),
        *("--prompt-tokens", "6"),
        *("--api-key", API_KEY, "--output", str(out), "--warmup", "2"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert [level["succeeded"] for level in report["levels"]] == [8, 8]
    level = report["levels"][1]
    assert level["output_tokens_per_s"] > 0 and level["ttft_s"]["p50"] > 0
    assert level["itl_s"]["p99"] >= level["itl_s"]["p50"] > 0
    assert (out / "bench.png").stat().st_size > 0
    assert report["config"]["api_key"] == "***"


def test_monitor_exit_codes(server: Server) -> None:
    from tests.conftest import run_cli
    from tests.integration.servers import free_port

    healthy = run_cli(
        "monitor",
        server.url,
        *("--interval", "0.1", "--count", "2", "--probe-slo", "30"),
        "--api-key",
        API_KEY,
    )
    assert healthy.returncode == 0, healthy.stderr
    polls = [json.loads(line) for line in healthy.stdout.splitlines()]
    assert len(polls) == 2 and all(p["ok"] and p["probe_ms"] > 0 for p in polls)
    dead = run_cli(
        "monitor", f"http://127.0.0.1:{free_port()}", *("--interval", "0.1", "--failures", "2")
    )
    assert dead.returncode == 1
    assert json.loads(dead.stdout.splitlines()[-1])["alarm"] is True


def test_the_playground_page_is_served_and_self_contained(server: Server) -> None:
    import re

    page = server.client(key=None).get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    # Nothing loads from elsewhere: no external scripts, styles or images.
    assert not re.search(r"""(src|href)=["']?https?://""", html)
    for route in ("v1/generate", "v1/classify", "v1/match", "v1/summarize", "v1/models"):
        assert f'"{route}"' in html
    assert "sessionStorage" in html and "Authorization" in html
