"""Server-sent events: the framing, the streaming response and its OpenAPI description. The
event bodies are the routes' own (native.py, openai.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

# No caching, and no buffering by nginx, so each event reaches the client when it is made.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(payload: dict[str, object] | str) -> bytes:
    """One event whose `data` is `payload` (JSON, or a literal string such as `[DONE]`)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def streamed(data: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI 200 response of a streaming route: events whose `data` field is `data`."""
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "string", **data}},
    }
    return {200: {"content": {"text/event-stream": {"schema": event}}}}
