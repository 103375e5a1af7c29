"""Events and per-request streams: what the engine thread hands each request's consumer
(an asyncio task or a blocking caller). No torch."""

from __future__ import annotations

import asyncio
import queue
from dataclasses import dataclass, field
from typing import Any

from lmforge.serve.request import FinishReason


@dataclass
class Event:
    """One update for one request. `text` is new text since the previous event (never half
    a UTF-8 character, never part of a stop string); the last event has `finish_reason`."""

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
        return await self.queue.get()  # type: ignore[misc]

    def next_blocking(self, timeout: float | None = None) -> Event:
        return self.queue.get(timeout=timeout)  # type: ignore[call-arg]


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
