"""The one mapping of our error tree to HTTP statuses, the one JSON error shape
(`{"error": {"type", "message", "param"}}`) and the OpenAPI table of the statuses. Validation
errors answer 422 on the native routes and 400 on the OpenAI-compatible ones, as OpenAI does."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lmforge.errors import EngineError, LmforgeError
from lmforge.serve.limits import RateLimited
from lmforge.serve.middleware import request_id
from lmforge.serve.request import InvalidRequest, PromptTooLong
from lmforge.serve.scheduler import Overloaded
from lmforge.serve.schemas import ErrorResponse, error_body
from lmforge.serve.tasks import RequestTimedOut

log = logging.getLogger(__name__)


class Unauthorized(LmforgeError):
    """No valid API key for the route."""


class Unavailable(LmforgeError):
    """The server takes no requests now (loading or draining); worth a retry later."""


class ClientGone(LmforgeError):
    """The client disconnected before its answer was ready."""


class InvalidField(LmforgeError):
    """A schema-valid body field this server cannot take (longer than the model's context,
    more items than the server's capacity): a 422 (400 on OpenAI routes) naming the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class ApiError(Exception):
    """An answer decided where it is raised: status, error type, message, parameter."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param
        self.headers = headers or {}


def as_api_error(exc: Exception, openai_route: bool) -> ApiError:
    """The one place that turns an exception into a status and an error type; one we did not
    expect is a 500 (logged) whose message carries the request id."""
    known = known_error(exc, openai_route)
    if known is not None:
        return known
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", f"internal error (request id {request_id.get()})")


def known_error(exc: BaseException, openai_route: bool) -> ApiError | None:
    """The answer to an exception we raise or expect, None for any other. Subclasses are
    tested before their bases (PromptTooLong before InvalidRequest, all before EngineError)."""
    invalid = 400 if openai_route else 422
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ClientGone):
        return ApiError(499, "client_closed_request", "the client disconnected")
    if isinstance(exc, Unauthorized):
        return ApiError(401, "authentication_error", str(exc))
    if isinstance(exc, Unavailable):
        return ApiError(503, "unavailable", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, RateLimited):
        retry = {"Retry-After": str(int(exc.retry_after + 0.999))}
        return ApiError(429, "rate_limit_error", str(exc), headers=retry)
    if isinstance(exc, Overloaded):
        return ApiError(429, "overloaded", exc.one_line(), headers={"Retry-After": "1"})
    if isinstance(exc, InvalidField):
        return ApiError(invalid, "invalid_request_error", str(exc), exc.param)
    if isinstance(exc, PromptTooLong):
        return ApiError(invalid, "context_length_exceeded", str(exc), "prompt")
    if isinstance(exc, InvalidRequest):
        return ApiError(invalid, "invalid_request_error", str(exc))
    if isinstance(exc, RequestTimedOut):
        return ApiError(504, "timeout", str(exc))
    if isinstance(exc, EngineError):
        return ApiError(503, "unavailable", str(exc))
    if isinstance(exc, RequestValidationError):
        first = _telling(exc.errors())
        param = ".".join(str(p) for p in first.get("loc", ()) if _is_field(p)) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return ApiError(invalid, "invalid_request_error", message, param)
    if isinstance(exc, HTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        kind = kinds.get(exc.status_code, "invalid_request_error")
        return ApiError(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {}))
    return None


def _telling(errors: Sequence[Any]) -> Any:
    """The error that says what is wrong. With a union (a text or a list of texts, a pair or
    a query), pydantic reports every member the value was not (a type mismatch, a missing or
    an unexpected field); the member that fits says why the value is wrong."""
    return next((e for e in errors if not _mismatch(str(e.get("type", "")))), errors[0])


def _mismatch(kind: str) -> bool:
    return kind.endswith("_type") or kind in ("missing", "extra_forbidden")


def _is_field(part: object) -> bool:
    """A part of an error's location that names a field or an index, not the request body or
    the union member pydantic tried (`list[str]`, `MatchQuery`: our fields are lowercase)."""
    if part == "body":
        return False
    return not isinstance(part, str) or not ("[" in part or part in _TYPES or part[:1].isupper())


_TYPES = {"str", "int", "float", "bool", "list", "dict"}


def install_error_handlers(app: FastAPI, openai_paths: set[str]) -> None:
    """Answer every exception in the one error shape; count the 429s by reason."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(exc, request.url.path in openai_paths)
        if error.status == 429:
            request.app.state.lmforge.metrics.rejections.labels(error.kind).inc()
        body = error_body(error.kind, error.message, error.param)
        return JSONResponse(body, status_code=error.status, headers=error.headers)

    # Starlette answers a handler for plain Exception and then re-raises, so every kind we
    # expect is registered by name; Exception is only the last resort (500).
    expected = (HTTPException, RequestValidationError, ApiError, LmforgeError)
    for kind in (*expected, Exception):
        app.add_exception_handler(kind, handle)


_MEANINGS = {
    400: "A body that is not JSON, or an invalid request (OpenAI routes), or no `model` "
    "when several served models could answer",
    401: "Missing or invalid API key",
    404: "No served model has the requested name (`model_not_found`)",
    413: "Request body too large",
    422: "Invalid request, or a prompt longer than the context",
    429: "Rate limited or overloaded (see Retry-After)",
    499: "The client disconnected",
    500: "Internal error (the message carries the request id)",
    503: "Not ready, draining, or the engine failed",
    504: "The request passed its deadline",
}
INFERENCE_ERRORS = (400, 401, 404, 413, 422, 429, 499, 500, 503, 504)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route's errors, in the one error shape (replacing FastAPI's
    own 422 shape, which we never send)."""
    return {s: {"model": ErrorResponse, "description": _MEANINGS[s]} for s in statuses}
