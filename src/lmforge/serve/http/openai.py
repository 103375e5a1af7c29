"""OpenAI-compatible routes: /v1/completions and /v1/chat/completions (whole or streamed),
/v1/embeddings, /v1/models. Clients written for OpenAI's API (and benchmark tools and
evaluation harnesses that use vLLM's extras) work unchanged. Both generation routes build
their engine requests the same way (`prepared` prompts, `n` choices each) and share the
call path of every inference route (`Call`). Just over ~300 lines on purpose: the OpenAI
surface in one router, beside the helpers in `completion.py` it shares with nothing else."""

from __future__ import annotations

import base64
from array import array
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from lmforge.serve import schemas as s
from lmforge.serve.chat import Reply, message_text
from lmforge.serve.http.call import Call
from lmforge.serve.http.completion import (
    Answer,
    Prompt,
    choice_requests,
    interleaved,
    prepared,
    prompt_list,
)
from lmforge.serve.http.deps import EmbedCall, InferenceCall, authorize, state_of
from lmforge.serve.http.errors import INFERENCE_ERRORS, ApiError, documented
from lmforge.serve.http.sse import event_stream, sse, streamed
from lmforge.serve.logprobs import chat_logprobs, completion_logprobs
from lmforge.serve.request import Kind, SamplingParams
from lmforge.serve.stream import Event, merge
from lmforge.serve.tasks import checked, embedding_requests, gather_cancelling, unit_vectors

router = APIRouter()

# `data` of the streaming routes' events: OpenAI's chunks, then the literal [DONE].
OPENAI_EVENT = {"description": "A text_completion chunk as JSON, or [DONE] at the end."}
CHAT_EVENT = {"description": "A chat.completion.chunk as JSON, or [DONE] at the end."}


@router.post(
    "/v1/completions",
    tags=["openai"],
    response_model=None,
    responses={**documented(*INFERENCE_ERRORS), **streamed(OPENAI_EVENT)},
)
async def completions(
    body: s.CompletionRequest, call: InferenceCall
) -> dict[str, object] | StreamingResponse:
    """OpenAI's completions API, with `n` choices per prompt, token-id prompts, and the
    prompt's log-probabilities with `echo` and `logprobs` (`max_tokens: 0` scores the prompt
    only), plus vLLM's `ignore_eos`, `min_tokens`, `top_k`, `repetition_penalty` and
    `truncate_prompt_tokens`."""
    given = prompt_list(body.prompt)
    if body.stream and len(given) != 1:
        raise ApiError(400, "invalid_request_error", "give one prompt to stream", "prompt")
    if body.max_tokens == 0 and not body.echo:
        raise ApiError(400, "invalid_request_error", "max_tokens=0 needs echo: true", "max_tokens")
    base = SamplingParams.from_body(body.sampling(), call.max_new_tokens)
    prompts = await prepared(
        call,
        given,
        body.requested_tokens,
        s.DEFAULT_MAX_TOKENS,
        body.truncate_prompt_tokens,
        body.n,
    )
    runs = [choice_requests(call, p, base, body.n) for p in prompts]
    scored = body.echo and bool(body.logprobs)
    scores = [
        call.request(p.ids, Kind.SCORE, SamplingParams(logprobs=body.logprobs or 0))
        if scored and len(p.ids) > 1
        else None
        for p in prompts
    ]
    call.admit([*(r for run in runs for r in run), *(r for r in scores if r is not None)])
    answer = Answer(call.model.name)
    if body.stream:
        streams = [call.events(r) for r in runs[0]]
        prompt_events = call.engine.events(scores[0]) if scores[0] else None
        chunks = completion_chunks(answer, call, body, prompts[0], streams, prompt_events)
        return event_stream(chunks)
    flat = [r for run in runs for r in run]
    generated, prompt_scored = await gather_cancelling(
        [call.generations(flat), call.complete([r for r in scores if r is not None])]
    )
    events, prompt_events_of = iter(generated), iter(prompt_scored)
    choices: list[dict[str, object]] = []
    for prompt, run, score in zip(prompts, runs, scores, strict=True):
        prompt_records = next(prompt_events_of).logprobs if score else []
        for _ in range(body.n):
            event = next(events) if run else None
            choices.append(
                completion_choice(call, body, prompt, event, prompt_records, len(choices))
            )
    used = s.usage(sum(p.tokens for p in prompts), sum(e.output_tokens for e in generated))
    return {**answer.body(choices), "usage": used}


def echoed(call: Call, prompt: Prompt) -> str:
    return prompt.text if prompt.text is not None else call.engine.tokenizer.decode(prompt.ids)


def completion_choice(
    call: Call,
    body: s.CompletionRequest,
    prompt: Prompt,
    event: Event | None,
    prompt_records: list[dict[str, object]],
    index: int,
) -> dict[str, object]:
    """One choice: the echoed prompt (when asked), the generated text, their logprobs."""
    echo = echoed(call, prompt) if body.echo else ""
    generated = event.logprobs if event else []
    chosen = None
    if body.logprobs:
        decode = call.engine.tokenizer.decode
        if body.echo:
            first = prompt.ids[0] if prompt.ids else None
            chosen = completion_logprobs(decode, [*prompt_records, *generated], first)
        else:
            chosen = completion_logprobs(decode, generated)
    reason = str(event.finish_reason) if event else "length"
    text = echo + (event.text if event else "")
    return {"index": index, "text": text, "logprobs": chosen, "finish_reason": reason}


async def completion_chunks(
    answer: Answer,
    call: Call,
    body: s.CompletionRequest,
    prompt: Prompt,
    streams: list[AsyncIterator[Event]],
    prompt_events: AsyncIterator[Event] | None,
) -> AsyncIterator[bytes]:
    """OpenAI's streamed completion: per choice, the echoed prompt (with its logprobs, when
    asked), a chunk per piece of text, one with the finish reason; then the usage (when asked
    for) and `[DONE]`."""
    decode = call.engine.tokenizer.decode
    if body.echo:
        records = checked(await merge("", prompt_events)).logprobs if prompt_events else []
        first = prompt.ids[0] if prompt.ids else None
        chosen = completion_logprobs(decode, records, first) if body.logprobs else None
        for index in range(body.n):
            yield answer.chunk(index, echoed(call, prompt), None, chosen)
    completed = 0
    async for index, event in interleaved(streams):
        chosen = completion_logprobs(decode, event.logprobs) if event.logprobs else None
        if event.text or chosen:
            yield answer.chunk(index, event.text, None, chosen)
        if event.finish_reason is not None:
            completed += event.output_tokens
            yield answer.chunk(index, "", event.finish_reason.value)
    if not streams:  # max_tokens 0: the echo is the whole answer
        for index in range(body.n):
            yield answer.chunk(index, "", "length")
    if body.stream_options and body.stream_options.include_usage:
        yield answer.usage(prompt.tokens, completed)
    yield sse("[DONE]")


@router.post(
    "/v1/chat/completions",
    tags=["openai"],
    response_model=None,
    responses={**documented(*INFERENCE_ERRORS), **streamed(CHAT_EVENT)},
)
async def chat_completions(
    body: s.ChatCompletionRequest, call: InferenceCall
) -> dict[str, object] | StreamingResponse:
    """OpenAI's chat completions API: the messages rendered with the served model's chat
    template (see docs/api.md), `n` choices, `logprobs`/`top_logprobs`, and the extras of
    /v1/completions."""
    template = call.engine.chat_template
    messages = [{"role": m.role, "content": message_text(_parts(m.content))} for m in body.messages]
    text = template.render(messages)
    fields = body.sampling()
    user_stops = [fields["stop"]] if isinstance(fields["stop"], str) else fields["stop"] or []
    fields["stop"] = [*user_stops, *template.stops]
    base = SamplingParams.from_body(fields, call.max_new_tokens)
    (prompt,) = await prepared(
        call,
        [text],
        body.requested_tokens,
        call.max_new_tokens,
        body.truncate_prompt_tokens,
        body.n,
    )
    requests = call.admit(choice_requests(call, prompt, base, body.n))
    answer = Answer(call.model.name, chat=True)
    top = body.top_logprobs or 0
    if body.stream:
        streams = [call.events(r) for r in requests]
        return event_stream(chat_chunks(answer, call, body, prompt, streams, top))
    events = await call.generations(requests)
    decode = call.engine.tokenizer.decode
    choices: list[dict[str, object]] = []
    for index, event in enumerate(events):
        message = {"role": "assistant", "content": Reply(template).piece(event.text)}
        chosen = chat_logprobs(decode, event.logprobs, top) if body.logprobs else None
        reason = str(event.finish_reason)
        choices.append(
            {"index": index, "message": message, "logprobs": chosen, "finish_reason": reason}
        )
    used = s.usage(prompt.tokens, sum(e.output_tokens for e in events))
    return {**answer.body(choices), "usage": used}


def _parts(content: str | list[s.ChatContentPart] | None) -> str | list[dict[str, object]] | None:
    return [part.model_dump() for part in content] if isinstance(content, list) else content


async def chat_chunks(
    answer: Answer,
    call: Call,
    body: s.ChatCompletionRequest,
    prompt: Prompt,
    streams: list[AsyncIterator[Event]],
    top: int,
) -> AsyncIterator[bytes]:
    """OpenAI's streamed chat: per choice, the assistant role, a chunk per piece of text and
    one with the finish reason; then the usage (when asked for) and `[DONE]`."""
    decode = call.engine.tokenizer.decode
    replies = [Reply(call.engine.chat_template) for _ in streams]
    for index in range(len(streams)):
        role = {"index": index, "delta": {"role": "assistant", "content": ""}}
        yield sse(answer.body([{**role, "logprobs": None, "finish_reason": None}], chunk=True))
    completed = 0
    async for index, event in interleaved(streams):
        chosen = (
            chat_logprobs(decode, event.logprobs, top) if body.logprobs and event.logprobs else None
        )
        piece = replies[index].piece(event.text)
        if piece or chosen:
            yield answer.chunk(index, piece, None, chosen)
        if event.finish_reason is not None:
            completed += event.output_tokens
            yield answer.chunk(index, "", event.finish_reason.value)
    if body.stream_options and body.stream_options.include_usage:
        yield answer.usage(prompt.tokens, completed)
    yield sse("[DONE]")


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
