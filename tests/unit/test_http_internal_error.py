"""A real 500 through the whole app (our create_app and middleware, over a real engine on a
tiny model): a route that raises what nothing expects answers in the one error shape, with
the request id in the header and the body, and its traceback is logged once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lmforge.serve.engine import Engine
from lmforge.serve.http.app import create_app
from lmforge.serve.state import ModelInfo
from tests.unit.inprocess import API_KEY, app_state, running_engine


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


def test_an_unexpected_exception_is_a_500_with_the_request_id_logged_once(
    served: tuple[Engine, ModelInfo], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(app_state(served))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/broken", broken, methods=["GET"])
    # raise_server_exceptions (the default): the exception must not escape the app, where
    # the ASGI server would log it a second time.
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with TestClient(app, headers=headers) as client, caplog.at_level(logging.INFO):
        given = client.get("/v1/broken", headers={"X-Request-ID": "given-id-1"})
        made_up = client.get("/v1/broken")
    assert given.status_code == 500 and given.headers["x-request-id"] == "given-id-1"
    assert given.json() == {
        "error": {
            "type": "internal_error",
            "message": "internal error (request id given-id-1)",
            "param": None,
        }
    }
    rid = made_up.headers["x-request-id"]
    assert (
        len(rid) == 32
        and made_up.json()["error"]["message"] == f"internal error (request id {rid})"
    )
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 2, [r.getMessage() for r in tracebacks]  # one per request
    assert [r.exc_info[1].args for r in tracebacks if r.exc_info] == [("a bug",)] * 2
    access = [r for r in caplog.records if r.name == "lmforge.access"]
    assert [getattr(r, "status", None) for r in access] == [500, 500]
    state = app.state.lmforge
    assert (
        state.metrics.registry.get_sample_value(
            "lmforge_requests_total", {"route": "other", "status": "500", "model": ""}
        )
        == 2
    )


def test_the_docs_page_is_off_when_asked(served: tuple[Engine, ModelInfo]) -> None:
    with TestClient(create_app(app_state(served, docs=False))) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 404
    with TestClient(create_app(app_state(served))) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
