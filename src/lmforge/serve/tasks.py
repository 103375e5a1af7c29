"""Classify, match, summarize and embed, built on engine requests. Each task submits all its
requests at once, so the engine batches them; cancelling the caller aborts them all."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lmforge import prompts
from lmforge.errors import EngineError
from lmforge.serve.engine import Engine
from lmforge.serve.request import FinishReason, Kind, Request, SamplingParams
from lmforge.serve.stream import Event

T = TypeVar("T")


class RequestTimedOut(EngineError):
    """A request passed its deadline."""


def checked(event: Event) -> Event:
    """The event of a request that completed, or the engine's reason why not."""
    if event.finish_reason is FinishReason.TIMEOUT:
        raise RequestTimedOut("the request passed its deadline")
    if event.finish_reason is FinishReason.ERROR:
        raise EngineError(f"the engine failed the request: {event.error}")
    return event


async def gather_cancelling(runs: list[Awaitable[T]]) -> list[T]:
    """Run concurrently; if one fails or the caller is cancelled, cancel (abort) the others."""
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def _all(engine: Engine, requests: list[Request]) -> list[Event]:
    return [checked(e) for e in await gather_cancelling([engine.complete(r) for r in requests])]


async def label_scores(
    engine: Engine, texts: list[str], labels: list[str], template: str, timeout: float
) -> list[dict[str, float]]:
    """Zero-shot classification by label scoring: P(label | prompt) from the summed
    log-probabilities of each label's tokens, normalised over the candidate labels. A prompt
    too long for the context loses its beginning: the end, next to the label, matters most."""
    # A label longer than half the context is scored by its beginning.
    label_ids = [
        engine.encode(prompts.label_continuation(label))[: engine.max_seq_len // 2]
        for label in labels
    ]
    # Every label of a text sees the same context: room for the longest one.
    room = engine.max_seq_len - max(map(len, label_ids)) - 1
    requests = []
    for text in texts:
        context = engine.encode(prompts.classify_prompt(text, template))[-room:]
        for ids in label_ids:
            requests.append(
                engine.request(context + ids, Kind.SCORE, timeout=timeout, score_from=len(context))
            )
    events = await _all(engine, requests)
    results = []
    for i in range(len(texts)):
        totals = [sum(e.scores or []) for e in events[i * len(labels) : (i + 1) * len(labels)]]
        top = max(totals)
        weights = [math.exp(t - top) for t in totals]
        results.append({label: w / sum(weights) for label, w in zip(labels, weights, strict=True)})
    return results


async def embeddings(
    engine: Engine, inputs: Sequence[str | list[int]], timeout: float, pooling: str = "mean"
) -> tuple[list[list[float]], int]:
    """(unit-length embeddings, prompt tokens used)."""
    requests = [engine.request(x, Kind.EMBED, timeout=timeout, pooling=pooling) for x in inputs]
    events = await _all(engine, requests)
    vectors = []
    for event in events:
        norm = math.sqrt(sum(v * v for v in event.embedding or [])) or 1.0
        vectors.append([v / norm for v in event.embedding or []])
    return vectors, sum(e.prompt_tokens for e in events)


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine of two unit vectors."""
    return sum(x * y for x, y in zip(a, b, strict=True))


@dataclass
class Summary:
    text: str
    prompt_tokens: int
    output_tokens: int


async def summarize(engine: Engine, text: str, max_new_tokens: int, timeout: float) -> Summary:
    """The summarization training format (`prompts.SUMMARY_TEMPLATE`: the document, then
    the cue GPT-2 itself answers with a summary zero-shot), greedy, ending at a newline. A
    text too long for the context keeps its beginning, where the gist usually is; the summary
    gets at most half the context."""
    max_new_tokens = min(max_new_tokens, engine.max_seq_len // 2)
    params = SamplingParams(
        max_new_tokens=max_new_tokens, temperature=0, repetition_penalty=1.2, stop=("\n",)
    )
    # The template's text around `{document}`, so that only the document is cut to fit.
    before, after = prompts.SUMMARY_TEMPLATE.split("{document}", 1)
    head, tail = engine.encode(before), engine.encode(after)
    room = engine.max_seq_len - max_new_tokens - len(head) - len(tail)
    ids = head + engine.encode(text.strip())[:room] + tail
    request = engine.request(ids, Kind.GENERATE, params, timeout=timeout)
    event = checked(await engine.complete(request))
    return Summary(event.text.strip(), event.prompt_tokens, event.output_tokens)
