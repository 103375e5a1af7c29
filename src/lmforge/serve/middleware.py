"""ASGI middleware (plain ASGI, so streaming responses pass through untouched): request IDs in
and out and in every log line, JSON access logs with per-route and per-model metrics, the
last-resort 500, and the body limit."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmforge.serve.metrics import Metrics
from lmforge.serve.schemas import error_body

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("lmforge.access")
log = logging.getLogger(__name__)
# An exception no handler took, and the request's path → the status and JSON body to answer.
ErrorAnswer = Callable[[Exception, str], tuple[int, bytes]]
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# The scope key under which the route's dependency records the model a request went to.
MODEL_KEY = "lmforge.model"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record made while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


async def send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Request ID (taken from a well-formed `X-Request-ID` or made up), echoed in the response;
    one access-log line and the request metrics when the response ends. Outermost of our
    middleware, it also answers what nothing else handled (`answer_error`, a 500 naming the
    id), so no response leaves without its id and the framework and the server never see the
    exception (each of which would log it again)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        routes: set[str],
        log_access: bool,
        answer_error: ErrorAnswer,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.log_access = log_access
        self.answer_error = answer_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()
        path = scope["path"]
        route = path if path in self.routes else "other"

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started_response:
                # Too late for a 500: ending without the rest of the body makes the server
                # close the connection, so the client sees a cut-off answer, not a whole one.
                log.error("unhandled error after the response started", exc_info=exc)
            else:
                code, body = self.answer_error(exc, path)
                await send_json(send_with_id, code, body)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            model = str(scope.get(MODEL_KEY, ""))
            self.metrics.requests.labels(route, str(status), model).inc()
            self.metrics.duration.labels(route, model).observe(elapsed)
            if self.log_access:
                client = scope.get("client") or ("-", 0)
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    path,
                    status,
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": round(1000 * elapsed, 2),
                        "client": client[0],
                        "model": model,
                    },
                )
            request_id.reset(token)


class BodyTooLarge(HTTPException):
    """Raised while reading an over-long body; FastAPI passes HTTP exceptions on to the error
    handlers, which answer 413 in the API's error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyLimit:
    """413 for bodies over `limit` bytes: at once from Content-Length, before any of the body
    is read, or while reading a body sent without one. The server reads and drops the rest of
    a body that still comes (within its body timeout), so the client gets to see the 413."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            self.metrics.rejections.labels("body_too_large").inc()
            refusal = BodyTooLarge(self.limit)
            body = json.dumps(error_body("request_too_large", refusal.detail)).encode()
            return await send_json(send, 413, body)
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    self.metrics.rejections.labels("body_too_large").inc()
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted_receive, send)
