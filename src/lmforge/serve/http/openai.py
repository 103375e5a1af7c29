"""OpenAI-compatible routes: /v1/completions (whole or streamed), /v1/embeddings, /v1/models.
Clients written for OpenAI's API (and benchmark tools that use vLLM's extras) work unchanged."""

from __future__ import annotations

import base64
import time
import uuid
from array import array
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from lmforge.serve import schemas as s
from lmforge.serve.engine import Engine
from lmforge.serve.http.deps import EmbedCall, InferenceCall, authorize, state_of
from lmforge.serve.http.errors import INFERENCE_ERRORS, ApiError, documented
from lmforge.serve.http.sse import event_stream, sse, streamed
from lmforge.serve.request import SamplingParams
from lmforge.serve.stream import Event
from lmforge.serve.tasks import embedding_requests, unit_vectors

router = APIRouter()

# `data` of /v1/completions' events: OpenAI's completion chunks, then the literal [DONE].
OPENAI_EVENT = {"description": "A text_completion chunk as JSON, or [DONE] at the end."}


class Completion:
    """What every body and chunk of one completion repeats: its id, time and model."""

    def __init__(self, model: str) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def body(self, choices: list[dict[str, object]]) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def chunk(self, text: str, reason: str | None, logprobs: object = None) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": reason}
        return sse(self.body([choice]))


@router.post(
    "/v1/completions",
    tags=["openai"],
    response_model=None,
    responses={**documented(*INFERENCE_ERRORS), **streamed(OPENAI_EVENT)},
)
async def completions(
    body: s.CompletionRequest, call: InferenceCall
) -> dict[str, object] | StreamingResponse:
    """OpenAI's completions API (plus vLLM's `ignore_eos`, `min_tokens`, `top_k`,
    `repetition_penalty`)."""
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or (body.stream and len(prompts) != 1):
        raise ApiError(400, "invalid_request_error", "give one prompt to stream", "prompt")
    params = SamplingParams.from_body(body.sampling(), call.max_new_tokens)
    completion = Completion(call.model.name)
    requests = await call.generation_requests(prompts, params)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        echo = prompts[0] if body.echo else ""
        chunks = completion_chunks(completion, call.engine, call.events(requests[0]), echo, usage)
        return event_stream(chunks)
    events = await call.generations(requests)
    choices: list[dict[str, object]] = []
    for index, (prompt, event) in enumerate(zip(prompts, events, strict=True)):
        echo = prompt if body.echo else ""
        chosen = logprobs(call.engine, event, len(echo)) if body.logprobs else None
        text = echo + event.text
        choices.append(
            {
                "index": index,
                "text": text,
                "logprobs": chosen,
                "finish_reason": str(event.finish_reason),
            }
        )
    used = s.usage(sum(e.prompt_tokens for e in events), sum(e.output_tokens for e in events))
    return {**completion.body(choices), "usage": used}


async def completion_chunks(
    completion: Completion,
    engine: Engine,
    events: AsyncIterator[Event],
    echo: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """OpenAI's streamed completion: the echoed prompt, a chunk per piece of text, one with the
    finish reason, the usage (when asked for), then `[DONE]`."""
    if echo:
        yield completion.chunk(echo, None)
    async for event in events:
        chosen = logprobs(engine, event, 0) if event.logprobs else None
        if event.text or chosen:
            yield completion.chunk(event.text, None, chosen)
        if event.finish_reason is not None:
            yield completion.chunk("", event.finish_reason.value)
            if include_usage:
                used = s.usage(event.prompt_tokens, event.output_tokens)
                yield sse({**completion.body([]), "usage": used})
    yield sse("[DONE]")


def logprobs(engine: Engine, event: Event, offset: int) -> dict[str, object]:
    """OpenAI's `logprobs` of a choice; `offset` is where the generated text starts."""
    tokens = [engine.tokenizer.decode([t]) for t in event.token_ids]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [lp["logprob"] for lp in event.logprobs],
        "top_logprobs": [
            {engine.tokenizer.decode([t]): v for t, v in lp["top"].items()} for lp in event.logprobs
        ],
        "text_offset": offsets,
    }


@router.post(
    "/v1/embeddings", tags=["openai"], response_model=None, responses=documented(*INFERENCE_ERRORS)
)
async def openai_embeddings(body: s.EmbeddingRequest, call: EmbedCall) -> dict[str, object]:
    """OpenAI's embeddings API: unit-length pooled hidden states (mean over tokens by
    default)."""
    inputs = embedding_inputs(body.input)
    encoded = iter(await call.prompt_ids([x for x in inputs if isinstance(x, str)]))
    ids = [next(encoded) if isinstance(x, str) else x for x in inputs]
    requests = embedding_requests(call.engine, ids, call.timeout, body.pooling)
    events = await call.complete(call.admit(requests))
    vectors, prompt_tokens = unit_vectors(events)
    data = []
    for index, vector in enumerate(vectors):
        value: object = vector
        if body.encoding_format == "base64":
            value = base64.b64encode(array("f", vector).tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": call.model.name,
        "usage": s.usage(prompt_tokens, 0),
    }


def embedding_inputs(given: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """The texts of an embeddings body: one text, texts, one text as token ids, or several."""
    if isinstance(given, str):
        return [given]
    ids = [x for x in given if isinstance(x, int)]
    if len(ids) == len(given):
        return [ids]
    return [x for x in given if not isinstance(x, int)]


@router.get(
    "/v1/models",
    response_model=s.ModelList,
    dependencies=[Depends(authorize)],
    responses=documented(401, 429, 500, 503),
)
async def models(request: Request) -> dict[str, object]:
    """Every served model: name, registry version, sha256 of its weights, context length, kind
    (generator, classifier, matcher or summarizer) and a classification head's labels."""
    state = state_of(request)
    cards = [
        {
            "id": info.name,
            "created": state.started,
            "version": info.version,
            "sha256": info.sha256,
            "context_length": info.context_length,
            "kind": info.kind,
            "labels": list(info.labels) or None,
        }
        for info in (served.info for served in state.models)
    ]
    return {"object": "list", "data": cards}
