"""The HTTP error mapping in-process: every error type of our tree → its status, error type
and headers, in the one error shape; first through the real handlers on a bare app, then
through the whole app over a real engine on a tiny model (auth, limits, validation, context
length, rate limits, readiness, deadlines, unknown routes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from lmforge.errors import EngineError, ModelError
from lmforge.serve.engine import Engine
from lmforge.serve.http.errors import (
    ApiError,
    ClientGone,
    Unauthorized,
    Unavailable,
    install_error_handlers,
)
from lmforge.serve.limits import RateLimited
from lmforge.serve.request import InvalidRequest, PromptTooLong
from lmforge.serve.scheduler import Overloaded
from lmforge.serve.state import ModelInfo
from lmforge.serve.tasks import RequestTimedOut
from tests.unit.inprocess import ADMIN_KEY, app_state, client, running_engine

SHAPE = {"type", "message", "param"}
INTERNAL = "internal error (request id -)"
# error raised → status on native routes, on OpenAI routes, error type, param, message and
# Retry-After (None: the error's own text; no header).
MAPPING = [
    (Unauthorized("no key"), 401, 401, "authentication_error", None, None, None),
    (Unavailable("the server is draining"), 503, 503, "unavailable", None, None, "5"),
    (
        RateLimited("3 requests per minute", 1.2),
        *(429, 429, "rate_limit_error", None),
        *("rate limit exceeded: 3 requests per minute; retry after 1 s", "2"),
    ),
    (
        Overloaded("the queue is full", hint="retry"),
        *(429, 429, "overloaded", None, "the queue is full (retry)", "1"),
    ),
    (PromptTooLong("too long"), 422, 400, "context_length_exceeded", "prompt", None, None),
    (InvalidRequest("bad params"), 422, 400, "invalid_request_error", None, None, None),
    (RequestTimedOut("past its deadline"), 504, 504, "timeout", None, None, None),
    (EngineError("the engine is dead"), 503, 503, "unavailable", None, None, None),
    (ClientGone("x"), 499, 499, "client_closed_request", None, "the client disconnected", None),
    (ApiError(418, "teapot", "short and stout", "spout"), 418, 418, "teapot", "spout", None, None),
    (HTTPException(404, "Not Found"), 404, 404, "not_found", None, "Not Found", None),
    (HTTPException(405, "no"), 405, 405, "method_not_allowed", None, "no", None),
    (HTTPException(413, "too large"), 413, 413, "request_too_large", None, "too large", None),
    (ModelError("a bug"), 500, 500, "internal_error", None, INTERNAL, None),
    (RuntimeError("a bug"), 500, 500, "internal_error", None, INTERNAL, None),
]


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


class Body(BaseModel):
    count: int


@pytest.fixture
def bare(served: tuple[Engine, ModelInfo]) -> tuple[TestClient, FastAPI]:
    """The real error handlers on an app whose routes raise what they are told to; /openai
    is mapped as an OpenAI-compatible route."""
    app = FastAPI()
    app.state.lmforge = app_state(served)
    install_error_handlers(app, {"/openai"})
    by_name = {type(error).__name__ + str(i): error for i, (error, *_) in enumerate(MAPPING)}

    async def raising(name: str) -> None:
        raise by_name[name]

    async def validating(body: Body) -> int:
        return body.count

    for path in ("/native", "/openai"):
        app.add_api_route(path, raising, methods=["GET"])
        app.add_api_route(path, validating, methods=["POST"])
    return TestClient(app, raise_server_exceptions=False), app


@pytest.mark.parametrize("route", ["/native", "/openai"])
@pytest.mark.parametrize(("index", "case"), list(enumerate(MAPPING)), ids=lambda c: repr(c)[:40])
def test_every_error_type_has_its_status_and_the_one_shape(
    bare: tuple[TestClient, FastAPI], route: str, index: int, case: tuple
) -> None:
    test_client, app = bare
    error, native, openai, kind, param, message, retry_after = case
    answer = test_client.get(route, params={"name": f"{type(error).__name__}{index}"})
    assert answer.status_code == (openai if route == "/openai" else native)
    body = answer.json()["error"]
    assert set(body) == SHAPE
    assert (body["type"], body["param"]) == (kind, param)
    assert body["message"] == (message or str(error))
    assert answer.headers.get("retry-after") == retry_after
    if answer.status_code == 429:
        rejections = app.state.lmforge.metrics.registry.get_sample_value(
            "lmforge_rejections_total", {"reason": kind}
        )
        assert rejections == 1


def test_validation_errors_name_the_field_with_422_native_and_400_openai(
    bare: tuple[TestClient, FastAPI],
) -> None:
    test_client, _ = bare
    for route, status in (("/native", 422), ("/openai", 400)):
        answer = test_client.post(route, json={"count": "many"})
        assert answer.status_code == status
        error = answer.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "count")
        assert error["message"].startswith("count: ")


def test_keys_are_checked_on_inference_admin_and_private_metrics(
    served: tuple[Engine, ModelInfo],
) -> None:
    state = app_state(served, metrics_public=False)
    body = {"prompt": "the", "max_new_tokens": 2}
    for key, message in ((None, "send an API key"), ("wrong-key-0123456789", "not valid")):
        with client(state, key) as anonymous:
            answer = anonymous.post("/v1/generate", json=body)
            assert answer.status_code == 401
            assert answer.json()["error"]["type"] == "authentication_error"
            assert message in answer.json()["error"]["message"]
            assert anonymous.get("/metrics").status_code == 401
    with client(state) as user:
        assert user.post("/admin/reload").json()["error"]["message"] == (
            "admin routes need an admin key"
        )
        assert user.get("/metrics").status_code == 200
    with client(state, ADMIN_KEY) as admin:  # a server without a loader cannot reload
        assert admin.post("/admin/reload").status_code == 503


def test_bodies_over_the_limit_answer_413_with_or_without_a_length(
    served: tuple[Engine, ModelInfo],
) -> None:
    with client(app_state(served, max_body_bytes=100)) as test_client:
        declared = test_client.post("/v1/generate", content=b"x" * 200)
        streamed = test_client.post("/v1/generate", content=iter([b"x" * 80, b"x" * 80]))
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["type"] == "request_too_large"
        assert set(answer.json()["error"]) == SHAPE


def test_engine_refusals_through_the_whole_app(served: tuple[Engine, ModelInfo]) -> None:
    with client(app_state(served)) as test_client:
        too_long = {"prompt": "the cat " * 200, "max_new_tokens": 2}
        native = test_client.post("/v1/generate", json=too_long)
        openai = test_client.post("/v1/completions", json={"prompt": too_long["prompt"]})
        invalid = test_client.post("/v1/generate", json={"prompt": "x", "temperature": -1})
        two_streams = test_client.post(
            "/v1/completions", json={"prompt": ["a", "b"], "stream": True}
        )
        unknown = test_client.get("/v1/nothing")
        wrong_method = test_client.get("/v1/generate")
    assert native.status_code == 422 and openai.status_code == 400, (native.text, openai.text)
    for answer in (native, openai):
        error = answer.json()["error"]
        assert (error["type"], error["param"]) == ("context_length_exceeded", "prompt")
        assert "the context holds 128" in error["message"]
    assert invalid.status_code == 422 and invalid.json()["error"]["param"] == "temperature"
    assert two_streams.status_code == 400 and two_streams.json()["error"]["param"] == "prompt"
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    assert wrong_method.status_code == 405


def test_rate_limits_answer_429_with_retry_after(served: tuple[Engine, ModelInfo]) -> None:
    with client(app_state(served, rate_requests=1, rate_tokens=100)) as test_client:
        first = test_client.post("/v1/tokenize", json={"text": "the"})
        second = test_client.post("/v1/tokenize", json={"text": "the"})
    assert first.status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["type"] == "rate_limit_error"
    with client(app_state(served, rate_tokens=100)) as test_client:
        over = test_client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 200})
    assert over.status_code == 429 and "tokens per minute" in over.json()["error"]["message"]


def test_not_ready_and_draining_answer_503(served: tuple[Engine, ModelInfo]) -> None:
    loading, draining = app_state(served), app_state(served)
    loading.ready = False
    draining.draining = True
    for state, reason in ((loading, "not ready"), (draining, "draining")):
        with client(state) as test_client:
            answer = test_client.post("/v1/tokenize", json={"text": "the"})
            ready = test_client.get("/readyz")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.json()["error"] == {
            "type": "unavailable",
            "message": f"the server is {reason}",
            "param": None,
        }
        assert ready.status_code == 503


def test_a_request_past_its_deadline_answers_504(served: tuple[Engine, ModelInfo]) -> None:
    with client(app_state(served, request_timeout=1e-9)) as test_client:
        answer = test_client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 4})
        summary = test_client.post("/v1/summarize", json={"text": "the cat sat."})
    for late in (answer, summary):
        assert late.status_code == 504, late.text
        assert late.json()["error"]["type"] == "timeout"
