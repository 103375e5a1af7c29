"""FastAPI dependencies: who is calling (401 without a valid key), whether the server takes
requests now (503), the per-key request rate (429), and the model a call goes to (by its body's
`model` field and the route's task) with that model's engine leased for the call, whose charges
a refused call gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from lmforge.serve import models as m
from lmforge.serve.http.call import Call
from lmforge.serve.http.errors import (
    ApiError,
    InvalidField,
    Unauthorized,
    Unavailable,
    known_error,
)
from lmforge.serve.limits import Ledger
from lmforge.serve.middleware import MODEL_KEY
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


# The checks below are async although they never wait: FastAPI runs a plain `def` dependency
# on a worker thread, a hop per request that, while the engine thread holds the GIL between
# its kernels, waits for it (each hop was a thread wake-up and GIL handover on the TTFT path).


async def identify(request: Request) -> str:
    """The caller's key id; 401 without a valid key (when keys are configured); 503 while
    not ready or draining."""
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
    return key_id


async def authorize(request: Request) -> str:
    """`identify`, then the per-key request rate limit."""
    key_id = await identify(request)
    state_of(request).limiter.charge(key_id, "requests", 1)
    return key_id


async def authorize_admin(request: Request) -> str:
    state = state_of(request)
    key = _bearer(request)
    found = state.admin_keys.identify(key) if key and state.admin_keys else None
    if found is None:
        raise Unauthorized("admin routes need an admin key")
    return found


async def authorize_metrics(request: Request) -> None:
    state = state_of(request)
    if state.config.metrics_public or not state.keys:
        return
    key = _bearer(request)
    if key is None or state.keys.identify(key) is None:
        raise Unauthorized(SEND_A_KEY)


def refused(exc: BaseException) -> bool:
    """Whether the server turned the call down (a 4xx but 499: the body, its size, the
    capacity or the budget) rather than doing work that then failed or was abandoned."""
    error = known_error(exc, openai_route=False)
    return error is not None and 400 <= error.status < 500 and error.status != 499


def choice_error(exc: m.ModelChoiceError) -> Exception:
    """The answer to a `model` that picks no model: an unknown name is a 404
    `model_not_found` (as OpenAI answers), an ambiguous default a 400, and a model of the
    wrong kind a validation error (422; 400 on the OpenAI routes)."""
    if isinstance(exc, m.UnknownModel):
        return ApiError(404, "model_not_found", str(exc), "model")
    if isinstance(exc, m.WrongKind):
        return InvalidField("model", str(exc))
    return ApiError(400, "invalid_request_error", str(exc), "model")


async def requested_model(request: Request) -> str | None:
    """The body's `model` field, when it is a string. FastAPI has read and parsed the JSON
    body before the dependencies run (and keeps it on the request); a body that is not a JSON
    object, or a `model` that is not a string, names none here and fails validation later."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    name = body.get("model") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


class Inference:
    """The dependency of a route doing `task`: an authorized call over the model the request
    names (or the task's default), its engine leased until the response has been sent (a
    stream's last event included), so a hot swap retires the old engine only after. The
    request and its tokens are charged to the caller as it goes; a call the server refuses (an
    invalid body or model included: FastAPI validates the body after the dependencies) gets
    them back."""

    def __init__(self, task: m.Task) -> None:
        self.task = task

    async def __call__(self, request: Request, key: str = Depends(identify)) -> AsyncIterator[Call]:
        state = state_of(request)
        ledger = Ledger(state.limiter, key)
        ledger.charge("requests", 1)
        try:
            served = state.models.choose(self.task, await requested_model(request))
        except m.ModelChoiceError as exc:
            ledger.refund()
            raise choice_error(exc) from None
        request.scope[MODEL_KEY] = served.name
        with served.lease() as (engine, info):
            try:
                yield Call(state, engine, info, ledger, request)
            except BaseException as exc:
                if refused(exc):
                    ledger.refund()
                raise


# One call type per task; a route's parameter `call: XCall` picks its task.
InferenceCall = Annotated[Call, Depends(Inference(m.GENERATE))]
EmbedCall = Annotated[Call, Depends(Inference(m.EMBED))]
ClassifyCall = Annotated[Call, Depends(Inference(m.CLASSIFY))]
MatchCall = Annotated[Call, Depends(Inference(m.MATCH))]
SummarizeCall = Annotated[Call, Depends(Inference(m.SUMMARIZE))]
TokenizeCall = Annotated[Call, Depends(Inference(m.TOKENIZE))]
