"""Events and per-request streams: what the engine thread hands each request's consumer
(an asyncio task or a blocking caller). No torch."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from lmforge.serve.request import FinishReason, Kind, Request


@dataclass
class Event:
    """One update for one request. `text` is new text since the previous event (never half
    a UTF-8 character, never part of a stop string); the last event has `finish_reason`.
    `scores`: a score request's token log-probabilities, or a classify request's label
    probabilities in label id order."""

    request_id: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    scores: list[float] | None = None
    embedding: list[float] | None = None
    queued_seconds: float | None = None
    first_token_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def absorb(self, event: Event) -> None:
        """Add a later event of the same request (for callers that want the whole result)."""
        self.text += event.text
        self.token_ids += event.token_ids
        self.logprobs += event.logprobs
        if event.finished:
            for name in FINAL_FIELDS:
                setattr(self, name, getattr(event, name))


FINAL_FIELDS = (
    "finish_reason",
    "error",
    "prompt_tokens",
    "output_tokens",
    "scores",
    "embedding",
    "queued_seconds",
    "first_token_seconds",
)


class Stream:
    """Events of one request, handed from the engine thread to an asyncio or a blocking
    consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] | queue.Queue[Event] = (
            asyncio.Queue() if loop else queue.Queue()
        )

    async def next_async(self) -> Event:
        if not isinstance(self.queue, asyncio.Queue):
            raise TypeError("a stream made without an event loop is read with next_blocking")
        return await self.queue.get()

    def next_blocking(self, timeout: float | None = None) -> Event:
        if isinstance(self.queue, asyncio.Queue):
            raise TypeError("a stream made with an event loop is read with next_async")
        return self.queue.get(timeout=timeout)


def final_event(request: Request, event: Event) -> Event:
    """A finished request's last event: `event` with the finish reason, token counts, scores
    and timings filled in."""
    event.finish_reason = request.finish_reason
    event.error = request.error
    event.prompt_tokens = len(request.prompt_ids)
    event.output_tokens = len(request.output_ids)
    if request.kind in (Kind.SCORE, Kind.CLASSIFY):
        event.scores = request.scores
    if request.scheduled_at is not None:
        event.queued_seconds = request.scheduled_at - request.arrival
    if request.first_token_at is not None:
        event.first_token_seconds = request.first_token_at - request.arrival
    return event


async def follow(stream: Stream, leave: Callable[[], None]) -> AsyncIterator[Event]:
    """The stream's events up to the last; `leave` runs however the consumer stops reading
    (done, broke off early or cancelled)."""
    try:
        while True:
            event = await stream.next_async()
            yield event
            if event.finished:
                return
    finally:
        leave()


async def merge(request_id: str, events: AsyncIterator[Event]) -> Event:
    """One event with the whole text and token ids of `events`."""
    merged = Event(request_id)
    async for event in events:
        merged.absorb(event)
    return merged


def wait(request_id: str, stream: Stream, leave: Callable[[], None]) -> Event:
    """Blocking `merge` of a stream made without an event loop; `leave` runs at the end."""
    merged = Event(request_id)
    try:
        while not merged.finished:
            merged.absorb(stream.next_blocking())
        return merged
    finally:
        leave()


def _put_all(items: list[tuple[Stream, Event]]) -> None:
    for stream, event in items:
        stream.queue.put_nowait(event)


def deliver(outbox: list[tuple[Stream, Event]]) -> None:
    """Hand a step's events over with one wake-up per event loop: a wake-up per event makes
    the consumer's thread fight the engine thread for the GIL dozens of times a step."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Stream, Event]]] = {}
    for stream, event in outbox:
        if stream.loop is None:
            stream.queue.put_nowait(event)
        else:
            by_loop.setdefault(stream.loop, []).append((stream, event))
    for loop, items in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_put_all, items)
