"""The call path every inference route shares: encode the body's texts (bounded, off the event
loop), admit its engine requests as one unit (charged to the caller's token budget for all the
work they can do), run them through a window the engine can always hold, and await them while
watching the client, whose disconnect cancels the wait and so aborts the engine requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

from fastapi import Request

from lmforge.serve import drift
from lmforge.serve.engine import Engine
from lmforge.serve.http.errors import ClientGone
from lmforge.serve.http.tokens import Keep, char_bound, cut, encode, longest_token_chars
from lmforge.serve.limits import Ledger
from lmforge.serve.models import ModelInfo
from lmforge.serve.request import Kind, PromptTooLong, SamplingParams
from lmforge.serve.request import Request as EngineRequest
from lmforge.serve.state import AppState
from lmforge.serve.stream import Event
from lmforge.serve.tasks import checked, gather_cancelling

T = TypeVar("T")
# How often a waiting route asks whether its client is still there.
DISCONNECT_POLL_SECONDS = 0.2


class Call:
    """One inference call, charged to `ledger`'s caller, over the engine leased for it, which
    serves `model` (the one the request named, or its route's default)."""

    def __init__(
        self, state: AppState, engine: Engine, model: ModelInfo, ledger: Ledger, http: Request
    ) -> None:
        self.state = state
        self.engine = engine
        self.model = model
        self.ledger = ledger
        self.http = http

    @property
    def key(self) -> str:
        return self.ledger.key_id

    @property
    def max_new_tokens(self) -> int:
        """The server's cap on new tokens per request."""
        return self.state.config.max_new_tokens

    @property
    def timeout(self) -> float:
        return self.state.config.request_timeout

    @property
    def window(self) -> int:
        """Engine requests one call keeps in the engine at once: enough to fill every KV
        slot, at most half of what the engine holds (max_queue + kv_slots) when the queue
        is larger. A task of more requests goes through this window, so it is served whatever
        its size, without taking the whole queue from other callers."""
        settings = self.engine.settings
        return max(settings.kv_slots, (settings.max_queue + settings.kv_slots) // 2)

    def charge(self, tokens: int) -> None:
        """Take tokens from the caller's per-minute budget (429 when it is spent); a call
        refused later gets them back (see `deps.inference`)."""
        self.ledger.charge("tokens", tokens)

    async def encode(self, texts: Sequence[str], keep: Keep | None = Keep.HEAD) -> list[list[int]]:
        """Token ids of `texts`, each first cut to what the context can use (its `keep`
        part; None encodes whole texts, which the body limit bounds), all encoded in one
        call off the event loop."""
        if keep is not None:
            bound = char_bound(self.engine)
            texts = [cut(text, bound, keep) for text in texts]
        self.afford(texts)
        return await encode(self.engine, texts)

    async def prompt_ids(self, prompts: Sequence[str], new_tokens: int = 0) -> list[list[int]]:
        """Token ids of whole prompts that will ask for `new_tokens` in all; one that cannot
        fit the context is refused before any encoding (its tokens would only be counted to
        say so)."""
        bound, context = char_bound(self.engine), self.engine.max_seq_len
        for prompt in prompts:
            if len(prompt) > bound:
                raise PromptTooLong(
                    f"the prompt has more than {context} tokens ({len(prompt):,} characters); "
                    f"the context holds {context} including at least one new token"
                )
        self.afford(prompts, new_tokens)
        return await encode(self.engine, prompts)

    def afford(self, texts: Sequence[str], new_tokens: int = 0) -> None:
        """429 before any encoding when the caller's budget cannot cover what the call will
        surely cost: no token spells more than the vocabulary's longest entry, so a text has
        at least len / longest tokens. (An unaffordable flood then costs no tokenizer time.)"""
        longest = longest_token_chars(self.engine)
        self.ledger.require("tokens", sum(-(-len(t) // longest) for t in texts) + new_tokens)

    def request(
        self,
        prompt: str | list[int],
        kind: Kind = Kind.GENERATE,
        params: SamplingParams | None = None,
        **fields: Any,
    ) -> EngineRequest:
        return self.engine.request(prompt, kind, params, timeout=self.timeout, **fields)

    def admit(self, requests: list[EngineRequest]) -> list[EngineRequest]:
        """`requests`, charged as one unit to the caller's budget for every token they can
        make the engine process: their prompts and, for generations, the new tokens each may
        add (429, charging nothing, when the budget does not cover them all)."""
        self.charge(sum(map(self._cost, requests)))
        return requests

    @staticmethod
    def _cost(request: EngineRequest) -> int:
        """A request's prompt and, for a generation, the new tokens it asked for (up to the
        server's cap): what it may make the engine do."""
        new = request.params.max_new_tokens if request.kind is Kind.GENERATE else 0
        return len(request.prompt_ids) + new

    async def generation_requests(
        self, prompts: list[str], params: SamplingParams
    ) -> list[EngineRequest]:
        """Admitted generate requests for `prompts`."""
        ids = await self.prompt_ids(prompts, params.max_new_tokens * len(prompts))
        # An empty prompt stays text: the engine starts it as a new document.
        requests = [
            self.request(i or p, Kind.GENERATE, params) for p, i in zip(prompts, ids, strict=True)
        ]
        drift.sample(
            self.state, self.engine, self.model, self.admit(requests)
        )  # scored after, if sampled
        return requests

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

    async def complete(self, requests: list[EngineRequest]) -> list[Event]:
        """Run admitted requests together (through the call's window), one whole event each;
        504 for a deadline, 503 for an engine error."""
        return [checked(event) for event in await self._through_window(requests)]

    async def generations(self, requests: list[EngineRequest]) -> list[Event]:
        """`complete` for generate requests, their timings recorded."""
        started = time.perf_counter()
        events = await self._through_window(requests)
        for event in events:
            self._observe(event, started)
            checked(event)
        return events

    async def _through_window(self, requests: list[EngineRequest]) -> list[Event]:
        """Every request's whole event, at most `window` of them in the engine at once (each
        is submitted when it enters; its deadline counts from when the call made it)."""
        window = asyncio.Semaphore(self.window)

        async def one(request: EngineRequest) -> Event:
            async with window:
                return await self.engine.complete(request)

        return await self.wait(gather_cancelling([one(r) for r in requests]))

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
        self.state.metrics.observe_generation(self.model.name, event, time.perf_counter() - started)
