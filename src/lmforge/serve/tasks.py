"""Classify (by a classifier's head, or zero-shot by label scoring), match (by a matcher's
head, or embeddings), summarize and embed as engine requests over token ids, and their answers
from the requests' events. The HTTP layer encodes the texts (bounded, off the event loop),
admits all of a task's requests at once (so the engine batches them; cancelling the caller
aborts them all) and hands the events back here."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lmforge import prompts
from lmforge.errors import EngineError
from lmforge.serve.engine import Engine
from lmforge.serve.prefix_cache import BLOCK_TOKENS
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


@dataclass
class LabelRequests:
    """Zero-shot classification's engine requests: `prefills` (one per text, to run first;
    none when the engine keeps no prefixes) put each context in the prefix cache, so that the
    `scores` (each label after each context, context by context), submitted once they are
    done, compute only the label and the context's last partial block."""

    prefills: list[Request]
    scores: list[Request]


def label_requests(
    engine: Engine, contexts: list[list[int]], labels: list[list[int]], timeout: float
) -> LabelRequests:
    """Requests for zero-shot classification. A context too long loses its beginning: the
    end, next to the label, matters most. A label longer than half the context is scored by
    its beginning. The prefills run before the scores because requests admitted in one step
    all miss the cache: none of them has stored its prompt yet."""
    labels = [ids[: engine.max_seq_len // 2] for ids in labels]
    # Every label of a text sees the same context: room for the longest one.
    room = engine.max_seq_len - max(map(len, labels)) - 1
    shared = engine.settings.prefix_cache_mb > 0 and len(labels) > 1
    requests = LabelRequests([], [])
    for ids in contexts:
        context = ids[-room:]
        if shared and len(context) > BLOCK_TOKENS:
            requests.prefills.append(engine.request(context, Kind.PREFILL, timeout=timeout))
        for label in labels:
            requests.scores.append(
                engine.request(
                    context + label, Kind.SCORE, timeout=timeout, score_from=len(context)
                )
            )
    return requests


def label_probabilities(events: list[Event], labels: list[str]) -> list[dict[str, float]]:
    """P(label | prompt) per text from `label_requests`' events: the summed log-probabilities
    of each label's tokens, normalised over the candidate labels."""
    results = []
    for i in range(0, len(events), len(labels)):
        totals = [sum(e.scores or []) for e in events[i : i + len(labels)]]
        top = max(totals)
        weights = [math.exp(t - top) for t in totals]
        results.append({label: w / sum(weights) for label, w in zip(labels, weights, strict=True)})
    return results


def head_requests(engine: Engine, texts: list[list[int]], timeout: float) -> list[Request]:
    """Classify requests for a classifier's head, one per text; a text too long for the
    context keeps its end, as zero-shot contexts do."""
    return [
        engine.request(ids[-engine.max_seq_len :], Kind.CLASSIFY, timeout=timeout) for ids in texts
    ]


def head_probabilities(
    events: list[Event], model_labels: Sequence[str], chosen: Sequence[str]
) -> list[dict[str, float]]:
    """P(label | text) per text from `head_requests`' events, over the `chosen` labels (a
    subset of the model's): the head's softmax restricted to them and renormalised, i.e. the
    probability of each label given that the answer is one of them."""
    index = [list(model_labels).index(label) for label in chosen]
    results = []
    for event in events:
        picked = [(event.scores or [])[i] for i in index]
        total = sum(picked) or 1.0
        results.append({label: p / total for label, p in zip(chosen, picked, strict=True)})
    return results


def classifier_texts(texts: list[str]) -> list[str]:
    """The texts a classifier's head reads: in the form it was trained on."""
    return [prompts.task_text(text) for text in texts]


def pair_texts(first: str, others: Sequence[str]) -> list[str]:
    """The texts a matcher's head reads for `first` paired with each of `others`."""
    return [prompts.pair_text(first, other) for other in others]


def pair_scores(events: list[Event], labels: Sequence[str]) -> list[float]:
    """Each pair's score from `head_requests`' events on a matcher: the raw value of a
    regression head (its one output, `prompts.SCORE_LABEL`), else P(`prompts.MATCH_LABEL`)."""
    index = 0 if list(labels) == [prompts.SCORE_LABEL] else list(labels).index(prompts.MATCH_LABEL)
    return [(event.scores or [])[index] for event in events]


def classify_texts(texts: list[str], labels: list[str], template: str) -> list[str]:
    """The texts `label_requests` needs encoded: each text's prompt, then each label."""
    contexts = [prompts.classify_prompt(text, template) for text in texts]
    return [*contexts, *(prompts.label_continuation(label) for label in labels)]


def embedding_requests(
    engine: Engine, inputs: Sequence[list[int]], timeout: float, pooling: str = "mean"
) -> list[Request]:
    return [engine.request(x, Kind.EMBED, timeout=timeout, pooling=pooling) for x in inputs]


def unit_vectors(events: list[Event]) -> tuple[list[list[float]], int]:
    """(unit-length embeddings, prompt tokens used) from embedding requests' events."""
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


def summary_texts(document: str) -> list[str]:
    """The texts `summary_request` needs encoded: the summarization training format
    (`prompts.summary_pieces`), split so only the document is cut."""
    return list(prompts.summary_pieces(document))


def summary_request(
    engine: Engine, pieces: list[list[int]], max_new_tokens: int, timeout: float
) -> Request:
    """Greedy generation after the cue GPT-2 itself answers with a summary zero-shot,
    ending at a newline. A document too long for the context keeps its beginning, where the
    gist usually is; the summary gets at most half the context."""
    max_new_tokens = min(max_new_tokens, engine.max_seq_len // 2)
    params = SamplingParams(
        max_new_tokens=max_new_tokens, temperature=0, repetition_penalty=1.2, stop=("\n",)
    )
    head, document, tail = pieces
    room = engine.max_seq_len - max_new_tokens - len(head) - len(tail)
    return engine.request(head + document[:room] + tail, Kind.GENERATE, params, timeout=timeout)


def summary_of(event: Event) -> Summary:
    return Summary(event.text.strip(), event.prompt_tokens, event.output_tokens)
