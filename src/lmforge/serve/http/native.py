"""Native routes: /v1/generate (whole or as server-sent events) and /v1/tokenize."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from lmforge.serve import schemas as s
from lmforge.serve.http.deps import InferenceCall, TokenizeCall
from lmforge.serve.http.errors import INFERENCE_ERRORS, documented
from lmforge.serve.http.sse import event_stream, sse, streamed
from lmforge.serve.request import SamplingParams
from lmforge.serve.stream import Event

router = APIRouter()

# `data` of /v1/generate's events: JSON pieces of text; the last one has the finish reason
# and usage (and an error, if the engine failed the request).
NATIVE_EVENT = {
    "contentMediaType": "application/json",
    "contentSchema": {
        "type": "object",
        "required": ["id", "text"],
        "properties": {
            "id": {"type": "string"},
            "text": {"type": "string"},
            "finish_reason": {"type": "string"},
            "usage": {"type": "object"},
            "error": {"type": "object"},
        },
    },
}


@router.post(
    "/v1/generate",
    response_model=s.GenerateResponse,
    tags=["native"],
    responses={**documented(*INFERENCE_ERRORS), **streamed(NATIVE_EVENT)},
)
async def generate(
    body: s.GenerateRequest, call: InferenceCall
) -> dict[str, object] | StreamingResponse:
    """Generate text after `prompt`; with `stream: true`, server-sent events carry each new
    piece of text and the last one carries `finish_reason` and `usage`."""
    params = SamplingParams.from_body(body.model_dump(), call.max_new_tokens)
    (request,) = await call.generation_requests([body.prompt], params)
    if body.stream:
        return event_stream(native_events(request.request_id, call.events(request)))
    (event,) = await call.generations([request])
    return {
        "id": request.request_id,
        "text": event.text,
        "finish_reason": str(event.finish_reason),
        "usage": s.usage(event.prompt_tokens, event.output_tokens),
    }


async def native_events(rid: str, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    async for event in events:
        if event.text:
            yield sse({"id": rid, "text": event.text})
        if event.finish_reason is not None:
            final: dict[str, object] = {
                "id": rid,
                "text": "",
                "finish_reason": event.finish_reason.value,
                "usage": s.usage(event.prompt_tokens, event.output_tokens),
            }
            if event.error:
                final["error"] = {"type": event.finish_reason.value, "message": event.error}
            yield sse(final)


@router.post(
    "/v1/tokenize",
    response_model=s.TokenizeResponse,
    responses=documented(*INFERENCE_ERRORS),
)
async def tokenize(body: s.TokenizeRequest, call: TokenizeCall) -> dict[str, object]:
    """Token ids of `text` under the served model's tokenizer (the whole text, as long as the
    body limit allows), charged to the caller's token budget."""
    (tokens,) = await call.encode([body.text], keep=None)
    call.charge(len(tokens))
    return {"tokens": tokens, "count": len(tokens), "max_context": call.engine.max_seq_len}
