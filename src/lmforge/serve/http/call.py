"""The call path every inference route shares: charge the caller's token budget, make engine
requests with the server's deadline, and await them while watching the client, whose
disconnect cancels the wait and so aborts the engine requests at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request

from lmforge.serve.engine import Engine
from lmforge.serve.http.errors import ClientGone
from lmforge.serve.request import Kind, SamplingParams
from lmforge.serve.request import Request as EngineRequest
from lmforge.serve.state import AppState
from lmforge.serve.stream import Event
from lmforge.serve.tasks import checked, gather_cancelling

T = TypeVar("T")
# How often a waiting route asks whether its client is still there.
DISCONNECT_POLL_SECONDS = 0.2


class Call:
    """One inference call by the caller `key`, over the engine leased for it."""

    def __init__(self, state: AppState, engine: Engine, key: str, http: Request) -> None:
        self.state = state
        self.engine = engine
        self.key = key
        self.http = http

    @property
    def max_new_tokens(self) -> int:
        """The server's cap on new tokens per request."""
        return self.state.config.max_new_tokens

    @property
    def timeout(self) -> float:
        return self.state.config.request_timeout

    def charge(self, prompt_tokens: int, new_tokens: int = 0) -> None:
        """Take tokens from the caller's per-minute budget (429 when it is spent)."""
        self.state.limiter.charge(self.key, "tokens", prompt_tokens + new_tokens)

    def request(
        self,
        prompt: list[int],
        kind: Kind = Kind.GENERATE,
        params: SamplingParams | None = None,
        **fields: Any,
    ) -> EngineRequest:
        return self.engine.request(prompt, kind, params, timeout=self.timeout, **fields)

    def generation_requests(
        self, prompts: list[str], params: SamplingParams
    ) -> list[EngineRequest]:
        """Generate requests for `prompts`, charged for their tokens and one new-token budget."""
        ids = [self.engine.encode(prompt) for prompt in prompts]
        self.charge(sum(map(len, ids)), params.max_new_tokens)
        return [self.request(prompt, Kind.GENERATE, params) for prompt in ids]

    async def wait(self, work: Awaitable[T]) -> T:
        """Await `work`, cancelling it (and so aborting its engine requests) if the client goes."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
                if done:
                    return task.result()
                if await self.http.is_disconnected():
                    raise ClientGone("the client disconnected")
        finally:
            task.cancel()

    async def generations(self, requests: list[EngineRequest]) -> list[Event]:
        """Run generate requests together; one whole event each, timings recorded; 504 for a
        deadline, 503 for an engine error."""
        started = time.perf_counter()
        events = await self.wait(gather_cancelling([self.engine.complete(r) for r in requests]))
        for event in events:
            self._observe(event, started)
            checked(event)
        return events

    def events(self, request: EngineRequest) -> AsyncIterator[Event]:
        """Submit now (so a full queue or a bad request raises before any response starts)
        and follow the request's events; the last one's timings are recorded."""
        return self._timed(self.engine.events(request), time.perf_counter())

    async def _timed(self, events: AsyncIterator[Event], started: float) -> AsyncIterator[Event]:
        async for event in events:
            if event.finished:
                self._observe(event, started)
            yield event

    def _observe(self, event: Event, started: float) -> None:
        self.state.metrics.observe_generation(event, time.perf_counter() - started)
