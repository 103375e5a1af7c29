"""The HTTP API: routes, auth, limits, errors → status in one place, SSE and metrics.
Native routes answer validation errors with 422, the OpenAI-compatible ones with 400."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Awaitable
from importlib import resources
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.exceptions import HTTPException

from lmforge.errors import EngineError, LmforgeError
from lmforge.serve import schemas as s
from lmforge.serve.engine import Engine
from lmforge.serve.limits import RateLimited
from lmforge.serve.middleware import BodyLimit, RequestContext, request_id
from lmforge.serve.request import InvalidRequest, Kind, PromptTooLong, SamplingParams
from lmforge.serve.scheduler import Overloaded
from lmforge.serve.state import AppState
from lmforge.serve.stream import Event
from lmforge.serve.tasks import (
    RequestTimedOut,
    checked,
    cosine,
    embeddings,
    gather_cancelling,
    label_scores,
    summarize,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Open to anyone: probes, the API description and the playground. Everything else needs a key.
OPEN_ROUTES = {"/ping", "/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
OPEN_ROUTES |= {"/"}  # the playground page; its API calls carry the key typed into it
OPENAI_ROUTES = {"/v1/completions", "/v1/embeddings"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param
        self.headers = headers or {}


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body = {"error": {"type": error.kind, "message": error.message, "param": error.param}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def state_of(request: Request) -> AppState:
    return request.app.state.lmforge


# errors -------------------------------------------------------------------------------------


def as_api_error(request: Request, exc: Exception) -> ApiError:
    """The one place that turns an exception into a status and an error type."""
    openai_route = request.url.path in OPENAI_ROUTES
    invalid = 400 if openai_route else 422
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ClientGone):
        return ApiError(499, "client_closed_request", "the client disconnected")
    if isinstance(exc, RateLimited):
        retry = {"Retry-After": str(int(exc.retry_after + 0.999))}
        return ApiError(429, "rate_limit_error", str(exc), headers=retry)
    if isinstance(exc, Overloaded):
        return ApiError(429, "overloaded", exc.one_line(), headers={"Retry-After": "1"})
    if isinstance(exc, PromptTooLong):
        return ApiError(invalid, "context_length_exceeded", str(exc), "prompt")
    if isinstance(exc, InvalidRequest):
        return ApiError(invalid, "invalid_request_error", str(exc))
    if isinstance(exc, RequestTimedOut):
        return ApiError(504, "timeout", str(exc))
    if isinstance(exc, EngineError):
        return ApiError(503, "unavailable", str(exc))
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return ApiError(invalid, "invalid_request_error", message, param)
    if isinstance(exc, HTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        kind = kinds.get(exc.status_code, "invalid_request_error")
        return ApiError(exc.status_code, kind, str(exc.detail), headers=exc.headers)
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", f"internal error (request id {request_id.get()})")


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(request, exc)
        if error.status == 429:
            state_of(request).metrics.rejections.labels(error.kind).inc()
        return error_response(request, error)

    # Starlette answers a handler for plain Exception and then re-raises, so every kind we
    # expect is registered by name; Exception is only the last resort (500).
    expected = (HTTPException, RequestValidationError, ApiError, LmforgeError, ClientGone)
    for kind in (*expected, Exception):
        app.add_exception_handler(kind, handle)


# dependencies -------------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def authorize(request: Request) -> str:
    """The caller's key id; 401 without a valid key (when keys are configured); the
    per-key request rate limit; 503 while not ready or draining."""
    state = state_of(request)
    key_id = "anonymous"
    if state.keys:
        key = _bearer(request)
        if key is None:
            raise ApiError(
                401, "authentication_error", "send an API key: Authorization: Bearer KEY"
            )
        found = state.keys.identify(key)
        if found is None:
            raise ApiError(401, "authentication_error", "the API key is not valid")
        key_id = found
    if not state.accepting():
        reason = "draining" if state.draining else "not ready"
        raise ApiError(503, "unavailable", f"the server is {reason}", headers={"Retry-After": "5"})
    state.limiter.charge(key_id, "requests", 1)
    return key_id


def authorize_admin(request: Request) -> str:
    state = state_of(request)
    key = _bearer(request)
    found = state.admin_keys.identify(key) if key and state.admin_keys else None
    if found is None:
        raise ApiError(401, "authentication_error", "admin routes need an admin key")
    return found


def authorize_metrics(request: Request) -> None:
    state = state_of(request)
    if state.config.metrics_public or not state.keys:
        return
    key = _bearer(request)
    if key is None or state.keys.identify(key) is None:
        raise ApiError(401, "authentication_error", "send an API key: Authorization: Bearer KEY")


# helpers ------------------------------------------------------------------------------------


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and so aborting its engine requests) if the client goes."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise ClientGone
    finally:
        task.cancel()


def sampling(body: Any, max_new: int, cap: int, **extra: Any) -> SamplingParams:
    stop = body.stop if isinstance(body.stop, list) else [body.stop] if body.stop else []
    return SamplingParams(
        max_new_tokens=min(max_new, cap),
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p,
        repetition_penalty=body.repetition_penalty,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=body.seed,
        stop=tuple(stop),
        **extra,
    )


def charge_tokens(state: AppState, key_id: str, prompt_tokens: int, new_tokens: int) -> None:
    state.limiter.charge(key_id, "tokens", prompt_tokens + new_tokens)


def finished(state: AppState, event: Event, started: float) -> Event:
    """Record a finished generation's timings; 504 for a deadline, 503 for an engine error."""
    state.metrics.observe_generation(event, time.perf_counter() - started)
    return checked(event)


def sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_logprobs(engine: Engine, event: Event, offset: int) -> dict[str, Any]:
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


# the app ------------------------------------------------------------------------------------

_ERROR_MEANINGS = {
    400: "A body that is not JSON, or an invalid request (OpenAI routes)",
    401: "Missing or invalid API key",
    413: "Request body too large",
    422: "Invalid request, or a prompt longer than the context",
    429: "Rate limited or overloaded (see Retry-After)",
    499: "The client disconnected",
    500: "Internal error (the message carries the request id)",
    503: "Not ready, draining, or the engine failed",
    504: "The request passed its deadline",
}


def documented(*statuses: int, events: dict[str, Any] | None = None) -> dict[int, Any]:
    """OpenAPI `responses` of a route: its errors in the one error shape (replacing FastAPI's
    own 422 shape, which we never send) and, for streaming routes, the server-sent events
    whose `data` field holds `events`."""
    out: dict[int, Any] = {
        status: {"model": s.ErrorResponse, "description": _ERROR_MEANINGS[status]}
        for status in statuses
    }
    if events is not None:
        event = {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string", **events}},
        }
        out[200] = {"content": {"text/event-stream": {"schema": event}}}
    return out


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
# `data` of /v1/completions' events: OpenAI's completion chunks, then the literal [DONE].
OPENAI_EVENT = {"description": "A text_completion chunk as JSON, or [DONE] at the end."}


INFERENCE_ERRORS = (400, 401, 413, 422, 429, 499, 500, 503, 504)


def create_app(state: AppState | None) -> FastAPI:
    """The app over `state` (None builds the routes only, e.g. to list them)."""
    app = FastAPI(
        title="lmforge",
        summary="Generate, classify, match, summarize and embed with a GPT-2-family model.",
        version="0.1.0",
        redoc_url=None,
    )
    app.state.lmforge = state
    install_error_handlers(app)
    inference = [Depends(authorize)]

    @app.post(
        "/v1/generate",
        response_model=s.GenerateResponse,
        tags=["native"],
        responses=documented(*INFERENCE_ERRORS, events=NATIVE_EVENT),
    )
    async def generate(body: s.GenerateRequest, request: Request, key: str = Depends(authorize)):
        """Generate text after `prompt`; with `stream: true`, server-sent events carry each new
        piece of text and the last one carries `finish_reason` and `usage`."""
        state = state_of(request)
        params = sampling(
            body,
            body.max_new_tokens,
            state.config.max_new_tokens,
            min_new_tokens=min(body.min_new_tokens, body.max_new_tokens),
            ignore_eos=body.ignore_eos,
        )
        with state.lease() as engine:
            ids = engine.encode(body.prompt)
            charge_tokens(state, key, len(ids), params.max_new_tokens)
            req = engine.request(ids, Kind.GENERATE, params, timeout=state.config.request_timeout)
            started = time.perf_counter()
            if body.stream:
                return StreamingResponse(
                    native_stream(state, req.request_id, engine.events(req), started),
                    media_type="text/event-stream",
                    headers=SSE_HEADERS,
                )
            event = await until_disconnect(request, engine.complete(req))
        finished(state, event, started)
        return {
            "id": req.request_id,
            "text": event.text,
            "finish_reason": event.finish_reason.value,
            "usage": usage(event.prompt_tokens, event.output_tokens),
        }

    @app.post(
        "/v1/completions",
        tags=["openai"],
        responses=documented(*INFERENCE_ERRORS, events=OPENAI_EVENT),
    )
    async def completions(
        body: s.CompletionRequest, request: Request, key: str = Depends(authorize)
    ):
        """OpenAI's completions API (plus vLLM's `ignore_eos`, `min_tokens`, `top_k`,
        `repetition_penalty`)."""
        state = state_of(request)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or (body.stream and len(prompts) != 1):
            raise ApiError(400, "invalid_request_error", "give one prompt to stream", "prompt")
        params = sampling(
            body,
            body.max_tokens,
            state.config.max_new_tokens,
            min_new_tokens=min(body.min_tokens, body.max_tokens),
            ignore_eos=body.ignore_eos,
            logprobs=body.logprobs or 0,
        )
        created, cid = int(time.time()), f"cmpl-{uuid.uuid4().hex}"
        with state.lease() as engine:
            model = body.model or state.model.name
            id_lists = [engine.encode(p) for p in prompts]
            charge_tokens(state, key, sum(map(len, id_lists)), params.max_new_tokens)
            timeout = state.config.request_timeout
            reqs = [engine.request(ids, Kind.GENERATE, params, timeout=timeout) for ids in id_lists]
            started = time.perf_counter()
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                chunks = openai_stream(
                    state,
                    engine,
                    engine.events(reqs[0]),
                    started,
                    cid,
                    created,
                    model,
                    echo=prompts[0] if body.echo else "",
                    include_usage=include_usage,
                )
                return StreamingResponse(
                    chunks, media_type="text/event-stream", headers=SSE_HEADERS
                )
            runs = [engine.complete(r) for r in reqs]
            events = await until_disconnect(request, gather_cancelling(runs))
        choices = []
        for index, (prompt, event) in enumerate(zip(prompts, events, strict=True)):
            finished(state, event, started)
            text = (prompt if body.echo else "") + event.text
            choices.append(
                {
                    "index": index,
                    "text": text,
                    "logprobs": openai_logprobs(engine, event, len(prompt) if body.echo else 0)
                    if body.logprobs
                    else None,
                    "finish_reason": event.finish_reason.value,
                }
            )
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage(
                sum(e.prompt_tokens for e in events), sum(e.output_tokens for e in events)
            ),
        }

    @app.post("/v1/embeddings", tags=["openai"], responses=documented(*INFERENCE_ERRORS))
    async def openai_embeddings(
        body: s.EmbeddingRequest, request: Request, key: str = Depends(authorize)
    ):
        """OpenAI's embeddings API: unit-length pooled hidden states (mean over tokens by
        default)."""
        state = state_of(request)
        inputs: list[str | list[int]]
        if isinstance(body.input, str):
            inputs = [body.input]
        elif body.input and all(isinstance(x, int) for x in body.input):
            inputs = [list(body.input)]  # type: ignore[arg-type]
        else:
            inputs = list(body.input)  # type: ignore[arg-type]
        with state.lease() as engine:
            ids = [engine.encode(x) if isinstance(x, str) else x for x in inputs]
            charge_tokens(state, key, sum(map(len, ids)), 0)
            work = embeddings(engine, ids, state.config.request_timeout, body.pooling)
            vectors, prompt_tokens = await until_disconnect(request, work)
        data = []
        for index, vector in enumerate(vectors):
            value: Any = vector
            if body.encoding_format == "base64":
                value = base64.b64encode(array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        model = body.model or state.model.name
        return {"object": "list", "data": data, "model": model, "usage": usage(prompt_tokens, 0)}

    @app.post(
        "/v1/classify",
        response_model=s.ClassifyResponse,
        tags=["native"],
        responses=documented(*INFERENCE_ERRORS),
    )
    async def classify(body: s.ClassifyRequest, request: Request, key: str = Depends(authorize)):
        """Zero-shot classification by label scoring: the probability of each candidate label
        as the model's continuation of `template`."""
        state = state_of(request)
        texts = [body.text] if isinstance(body.text, str) else body.text
        with state.lease() as engine:
            charge_tokens(
                state, key, sum(len(engine.encode(t)) for t in texts) * len(body.labels), 0
            )
            work = label_scores(
                engine, texts, body.labels, body.template, state.config.request_timeout
            )
            scores = await until_disconnect(request, work)
        return {"results": [{"label": max(p, key=p.get), "scores": p} for p in scores]}

    @app.post(
        "/v1/match",
        response_model=s.MatchResponse,
        tags=["native"],
        responses=documented(*INFERENCE_ERRORS),
    )
    async def match(body: s.MatchRequest, request: Request, key: str = Depends(authorize)):
        """Cosine similarity of mean-pooled embeddings: a pair, or a query against candidates
        (ranked); with `threshold`, a match decision too."""
        state = state_of(request)
        pair = isinstance(body, s.MatchPair)
        texts = [body.text_a, body.text_b] if pair else [body.query, *body.candidates]
        with state.lease() as engine:
            # Texts longer than the context are embedded by their beginning.
            ids = [engine.encode(t)[: engine.max_seq_len - 1] for t in texts]
            charge_tokens(state, key, sum(map(len, ids)), 0)
            vectors, _ = await until_disconnect(
                request, embeddings(engine, ids, state.config.request_timeout)
            )
        decide = (lambda x: x >= body.threshold) if body.threshold is not None else (lambda x: None)
        if pair:
            similarity = cosine(vectors[0], vectors[1])
            return {"similarity": similarity, "match": decide(similarity)}
        ranking = [
            {"index": i, "text": t, "similarity": sim, "match": decide(sim)}
            for i, (t, sim) in enumerate(
                (t, cosine(vectors[0], v))
                for t, v in zip(body.candidates, vectors[1:], strict=True)
            )
        ]
        ranking.sort(key=lambda r: -r["similarity"])
        return {"ranking": ranking}

    @app.post(
        "/v1/summarize",
        response_model=s.SummarizeResponse,
        tags=["native"],
        responses=documented(*INFERENCE_ERRORS),
    )
    async def summarize_route(
        body: s.SummarizeRequest, request: Request, key: str = Depends(authorize)
    ):
        """A summary by 'TL;DR:' prompting (greedy, ends at the first newline)."""
        state = state_of(request)
        new = min(body.max_new_tokens, state.config.max_new_tokens)
        with state.lease() as engine:
            charge_tokens(state, key, len(engine.encode(body.text)), new)
            result = await until_disconnect(
                request, summarize(engine, body.text, new, state.config.request_timeout)
            )
        return {
            "summary": result.text,
            "usage": usage(result.prompt_tokens, result.output_tokens),
        }

    @app.post(
        "/v1/tokenize",
        response_model=s.TokenizeResponse,
        dependencies=inference,
        responses=documented(*INFERENCE_ERRORS),
    )
    async def tokenize(body: s.TokenizeRequest, request: Request):
        """Token ids of `text` under the served model's tokenizer."""
        with state_of(request).lease() as engine:
            tokens = engine.encode(body.text)
            return {"tokens": tokens, "count": len(tokens), "max_context": engine.max_seq_len}

    @app.get(
        "/v1/models",
        response_model=s.ModelList,
        dependencies=inference,
        responses=documented(401, 429, 500, 503),
    )
    async def models(request: Request):
        """The served model: name, registry version, sha256 of its weights, context length."""
        state = state_of(request)
        info = state.model
        card = {
            "id": info.name,
            "created": state.started,
            "version": info.version,
            "sha256": info.sha256,
            "context_length": info.context_length,
        }
        return {"object": "list", "data": [card]}

    @app.post(
        "/admin/reload",
        response_model=s.ReloadResponse,
        tags=["admin"],
        responses=documented(401, 500, 503),
    )
    async def reload(request: Request, _: str = Depends(authorize_admin)):
        """Load the model again (an alias may have moved), warm it up and swap it in; requests
        in flight finish on the old engine."""
        info = await asyncio.to_thread(state_of(request).reload)
        return {"model": info.name, "version": info.version, "sha256": info.sha256}

    playground = resources.files("lmforge.serve").joinpath("playground.html").read_text()

    @app.get("/", include_in_schema=False)
    async def playground_page():
        """The web playground: one self-contained page, no assets from elsewhere."""
        return HTMLResponse(playground)

    @app.get(
        "/ping",
        tags=["health"],
        response_model=s.PingResponse,
        responses={503: {"model": s.PingResponse, "description": "Not ready"}},
    )
    async def ping(request: Request):
        """The monitor contract: `{"success": bool, "message": str}`."""
        state = state_of(request)
        ok = state.accepting()
        message = "ready" if ok else "draining" if state.draining else "not ready"
        if not state.healthy():
            message = f"engine dead: {state.engine.dead}"
        return JSONResponse({"success": ok, "message": message}, status_code=200 if ok else 503)

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=s.ProbeStatus,
        responses={503: {"model": s.ProbeStatus, "description": "The engine loop is dead"}},
    )
    async def healthz(request: Request):
        """Liveness: the engine loop is running."""
        state = state_of(request)
        if state.healthy():
            return {"status": "alive"}
        return JSONResponse({"status": "dead", "reason": state.engine.dead}, status_code=503)

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=s.ProbeStatus,
        responses={503: {"model": s.ProbeStatus, "description": "Loading or draining"}},
    )
    async def readyz(request: Request):
        """Readiness: model loaded and warmed up, engine alive, not draining."""
        state = state_of(request)
        if state.accepting():
            return {"status": "ready"}
        reason = (
            "draining" if state.draining else "engine dead" if not state.healthy() else "loading"
        )
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=[Depends(authorize_metrics)],
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **documented(401),
        },
    )
    async def metrics(request: Request):
        """Prometheus metrics (`lmforge_*`)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        state = state_of(request)
        state.metrics.refresh(state.engine.snapshot(), state.accepting())
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if state is not None:
        routes = {route.path for route in app.routes}
        app.add_middleware(BodyLimit, limit=state.config.max_body_bytes, metrics=state.metrics)
        if state.config.cors_origins:
            from fastapi.middleware.cors import CORSMiddleware

            app.add_middleware(
                CORSMiddleware,
                allow_origins=state.config.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            )
        app.add_middleware(
            RequestContext, metrics=state.metrics, routes=routes, log_access=state.config.access_log
        )
    return app


async def native_stream(
    state: AppState, rid: str, events: AsyncIterator[Event], started: float
) -> AsyncIterator[bytes]:
    async for event in events:
        if event.text:
            yield sse({"id": rid, "text": event.text})
        if event.finished:
            state.metrics.observe_generation(event, time.perf_counter() - started)
            final: dict[str, Any] = {
                "id": rid,
                "text": "",
                "finish_reason": event.finish_reason.value,
                "usage": usage(event.prompt_tokens, event.output_tokens),
            }
            if event.error:
                final["error"] = {"type": event.finish_reason.value, "message": event.error}
            yield sse(final)


async def openai_stream(
    state: AppState,
    engine: Engine,
    events: AsyncIterator[Event],
    started: float,
    cid: str,
    created: int,
    model: str,
    *,
    echo: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    def chunk(text: str, reason: str | None, logprobs: Any = None) -> dict:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": reason}
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
        }

    if echo:
        yield sse(chunk(echo, None))
    async for event in events:
        logprobs = openai_logprobs(engine, event, 0) if event.logprobs else None
        if event.text or logprobs:
            yield sse(chunk(event.text, None, logprobs))
        if event.finished:
            state.metrics.observe_generation(event, time.perf_counter() - started)
            yield sse(chunk("", event.finish_reason.value))
            if include_usage:
                body = chunk("", None)
                body["choices"] = []
                body["usage"] = usage(event.prompt_tokens, event.output_tokens)
                yield sse(body)
    yield sse("[DONE]")
