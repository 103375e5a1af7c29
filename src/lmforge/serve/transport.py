"""The HTTP connection deadlines uvicorn lacks. Its protocols time out only an idle
connection after a response; a client that connects and sends nothing, or sends its headers
a byte at a time (slowloris), or its body ever more slowly, holds a connection for as long as
it likes. Here each request gets `header_timeout` seconds for its line and headers, counted
from connecting (or from its first byte on a kept-alive connection), then `body_timeout`
seconds for its body; past either, the connection is closed, with a 408 when no response has
started. Time spent on the answer is not counted: the request deadline governs that."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lmforge.serve.schemas import error_body

log = logging.getLogger(__name__)

_TIMED_OUT = json.dumps(
    error_body("request_timeout", "the request did not arrive in time"), separators=(",", ":")
).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_TIMED_OUT)
    + _TIMED_OUT
)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request's head and body."""

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.reading = ""  # "head" or "body" while a deadline runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start("head", self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.deadline is None and self.conn.their_state is h11.IDLE:
            self._start("head", self.header_timeout)  # a new request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have begun

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Move the deadline on as the client's side of the exchange moves."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self.reading != "body":
                self._start("body", self.body_timeout)
        elif state is not h11.IDLE or self.reading != "head":
            self._stop()  # the request is in (or the connection is ending)

    def _start(self, reading: str, seconds: float) -> None:
        self._stop()
        self.reading = reading
        self.deadline = self.loop.call_later(seconds, self._expired, seconds)

    def _stop(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline, self.reading = None, ""

    def _expired(self, seconds: float) -> None:
        reading, self.deadline, self.reading = self.reading, None, ""
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("closing the connection of %s: no request %s in %g s", client, reading, seconds)
        # A body still coming after an early answer (a 413) is being dropped: no second answer.
        if reading == "head" or self.cycle is None or not self.cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[DeadlineH11Protocol]:
    """The protocol class to give uvicorn (`http=`), with these deadlines."""

    class Configured(DeadlineH11Protocol):
        pass

    Configured.header_timeout = header_timeout
    Configured.body_timeout = body_timeout
    return Configured
