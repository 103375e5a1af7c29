"""The naive reference server for side-by-side runs with `lmforge bench`: FastAPI calling
transformers `generate` once per request (one request at a time, as the seed's server did).
Speaks just enough of /v1/completions (streaming, usage, ignore_eos, min_tokens).

    python bench/naive_server.py MODEL_DIR --port 8001
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from transformers import AutoTokenizer, GPT2LMHeadModel, TextIteratorStreamer


class Completion(BaseModel):
    model: str | None = None
    prompt: str
    max_tokens: int = 16
    min_tokens: int = 0
    temperature: float = 1.0
    ignore_eos: bool = False
    stream: bool = False


def build(model_dir: Path) -> FastAPI:
    model = GPT2LMHeadModel.from_pretrained(model_dir)
    model.eval()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    one_at_a_time = threading.Lock()
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_dir.name, "object": "model"}]}

    @app.post("/v1/completions", response_model=None)
    def completions(body: Completion) -> Response | dict[str, Any]:
        ids = tokenizer(body.prompt, return_tensors="pt").input_ids
        options: dict[str, Any] = {
            "max_new_tokens": body.max_tokens,
            "min_new_tokens": body.max_tokens if body.ignore_eos else body.min_tokens,
            "do_sample": body.temperature > 0,
            "pad_token_id": tokenizer.eos_token_id,
        }
        if body.temperature > 0:
            options["temperature"] = body.temperature
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)

        def run() -> None:
            with one_at_a_time, torch.inference_mode():
                model.generate(
                    ids, attention_mask=torch.ones_like(ids), streamer=streamer, **options
                )

        threading.Thread(target=run, daemon=True).start()
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text: str, reason: str | None) -> str:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            body = {"id": cid, "object": "text_completion", "created": created, "choices": [choice]}
            return f"data: {json.dumps(body)}\n\n"

        if body.stream:

            def events() -> Iterator[str]:
                for text in streamer:
                    if text:
                        yield chunk(text, None)
                yield chunk("", "length")
                usage = {"prompt_tokens": ids.shape[1], "completion_tokens": body.max_tokens}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join(streamer)
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(build(args.model_dir), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
