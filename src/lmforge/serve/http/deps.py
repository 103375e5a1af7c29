"""FastAPI dependencies: who is calling (401 without a valid key), whether the server takes
requests now (503), the per-key request rate (429), and the engine leased for one call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from lmforge.serve.http.call import Call
from lmforge.serve.http.errors import Unauthorized, Unavailable
from lmforge.serve.state import AppState

# Open to anyone: probes, the API description and the playground (whose API calls carry the
# key typed into it). Every other route needs a key; /metrics only when metrics_public is off.
OPEN_ROUTES = {"/ping", "/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
OPEN_ROUTES |= {"/"}
SEND_A_KEY = "send an API key: Authorization: Bearer KEY"


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.lmforge
    return state


def _bearer(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def authorize(request: Request) -> str:
    """The caller's key id; 401 without a valid key (when keys are configured); 503 while
    not ready or draining; the per-key request rate limit."""
    state = state_of(request)
    key_id = "anonymous"
    if state.keys:
        key = _bearer(request)
        if key is None:
            raise Unauthorized(SEND_A_KEY)
        found = state.keys.identify(key)
        if found is None:
            raise Unauthorized("the API key is not valid")
        key_id = found
    if not state.accepting():
        raise Unavailable(f"the server is {'draining' if state.draining else 'not ready'}")
    state.limiter.charge(key_id, "requests", 1)
    return key_id


def authorize_admin(request: Request) -> str:
    state = state_of(request)
    key = _bearer(request)
    found = state.admin_keys.identify(key) if key and state.admin_keys else None
    if found is None:
        raise Unauthorized("admin routes need an admin key")
    return found


def authorize_metrics(request: Request) -> None:
    state = state_of(request)
    if state.config.metrics_public or not state.keys:
        return
    key = _bearer(request)
    if key is None or state.keys.identify(key) is None:
        raise Unauthorized(SEND_A_KEY)


async def inference(request: Request, key: str = Depends(authorize)) -> AsyncIterator[Call]:
    """An authorized call over the engine serving now, leased until the response has been
    sent (a stream's last event included), so a hot swap retires the old engine only after."""
    state = state_of(request)
    with state.lease() as engine:
        yield Call(state, engine, key, request)


InferenceCall = Annotated[Call, Depends(inference)]
