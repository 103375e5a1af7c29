"""What both OpenAI generation routes (completions and chat) build the same way: the
answer's id and chunks, the prompts as the engine gets them with their new-token budgets,
`n` choices per prompt, and the events of several choices interleaved as they stream."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from lmforge.serve import schemas as s
from lmforge.serve.http.call import Call
from lmforge.serve.http.sse import sse
from lmforge.serve.http.tokens import Keep
from lmforge.serve.request import Kind, SamplingParams, new_token_budget
from lmforge.serve.request import Request as EngineRequest
from lmforge.serve.stream import Event


class Answer:
    """What every body and chunk of one answer repeats: its id, object, time and model."""

    def __init__(self, model: str, chat: bool = False) -> None:
        self.chat = chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def body(self, choices: list[dict[str, object]], chunk: bool = False) -> dict[str, object]:
        kind = "text_completion"
        if self.chat:
            kind = "chat.completion.chunk" if chunk else "chat.completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def chunk(self, index: int, content: str, reason: str | None, logprobs: object = None) -> bytes:
        choice: dict[str, object] = {"index": index, "logprobs": logprobs, "finish_reason": reason}
        if self.chat:
            choice["delta"] = {"content": content} if content or reason is None else {}
        else:
            choice["text"] = content
        return sse(self.body([choice], chunk=True))

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return sse(
            {**self.body([], chunk=True), "usage": s.usage(prompt_tokens, completion_tokens)}
        )


@dataclass
class Prompt:
    """One prompt as the engine gets it, with the new tokens each of its choices may add."""

    ids: list[int]  # empty for an empty text: the engine starts a new document
    text: str | None  # as given; None for token ids or a truncated text (echo decodes ids)
    budget: int

    @property
    def tokens(self) -> int:
        return len(self.ids) or 1  # an empty text is sent as <|endoftext|>


async def prepared(
    call: Call,
    given: Sequence[str | list[int]],
    requested: int | None,
    default: int,
    truncate: int | None,
    choices: int = 1,
) -> list[Prompt]:
    """Token ids of each prompt (texts encoded in one call; `truncate`: only the last N
    tokens, -1 as many as fit with the new tokens) and its new-token budget, which must fit
    the context with it (400 naming both numbers, as vLLM answers)."""
    texts = [p for p in given if isinstance(p, str)]
    context, cap = call.engine.max_seq_len, call.max_new_tokens
    if truncate is None:
        asked = (requested if requested is not None else default) * len(given) * choices
        encoded = iter(await call.prompt_ids(texts, asked))
    else:
        encoded = iter(await call.encode(texts, keep=Keep.TAIL))
    prompts = []
    for prompt in given:
        ids = next(encoded) if isinstance(prompt, str) else list(prompt)
        text = prompt if isinstance(prompt, str) else None
        if truncate is not None:
            keep = context - min(requested or 1, cap) if truncate == -1 else truncate
            if 0 < keep < len(ids):
                ids, text = ids[-keep:], None
        budget = new_token_budget(requested, default, len(ids) or 1, context, cap)
        prompts.append(Prompt(ids, text, budget))
    return prompts


def choice_requests(
    call: Call, prompt: Prompt, base: SamplingParams, n: int
) -> list[EngineRequest]:
    """The `n` generations of one prompt; choice i samples with seed + i, so that seeded
    choices differ and each is reproducible."""
    if not prompt.budget:
        return []
    params = dataclasses.replace(
        base,
        max_new_tokens=prompt.budget,
        min_new_tokens=min(base.min_new_tokens, prompt.budget),
    )
    seeds = [None if base.seed is None else base.seed + i for i in range(n)]
    return [
        call.request(prompt.ids or "", Kind.GENERATE, dataclasses.replace(params, seed=seed))
        for seed in seeds
    ]


async def interleaved(streams: Sequence[AsyncIterator[Event]]) -> AsyncIterator[tuple[int, Event]]:
    """The events of several requests as they come, each with its request's index; leaving
    early cancels every one still running (which aborts its request)."""
    if len(streams) == 1:
        # One choice (the common case) needs no pump task: that task and its queue were a
        # second task switch per token. Cancelled or closed, the stream ends with it (its
        # `follow` aborts the request).
        async for only in streams[0]:
            yield 0, only
        return
    queue: asyncio.Queue[tuple[int, Event | None]] = asyncio.Queue()

    async def pump(index: int, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                await queue.put((index, event))
        finally:
            queue.put_nowait((index, None))

    tasks = [asyncio.ensure_future(pump(i, events)) for i, events in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, event = await queue.get()
            if event is None:
                running -= 1
            else:
                yield index, event
    finally:
        for task in tasks:
            task.cancel()


def prompt_list(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """The prompts of a completions body: a text, texts, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(x, int) for x in prompt):
        return [[x for x in prompt if isinstance(x, int)]]
    return [x for x in prompt if not isinstance(x, int)]
