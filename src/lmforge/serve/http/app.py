"""The app: the routers, the error handlers and, around them, the middleware (request ids,
access logs and the last-resort 500 outermost, then CORS when configured, then the body
limit)."""

from __future__ import annotations

import json

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route

from lmforge.serve.http import health, native, openai, tasks
from lmforge.serve.http.docs import install_docs
from lmforge.serve.http.errors import as_api_error, install_error_handlers
from lmforge.serve.http.schema import install_model_schema
from lmforge.serve.middleware import BodyLimit, RequestContext
from lmforge.serve.schemas import error_body
from lmforge.serve.state import AppState


def create_app(state: AppState | None) -> FastAPI:
    """The app over `state` (None builds the routes only, e.g. to list them)."""
    app = FastAPI(
        title="lmforge",
        summary="Generate, classify, match, summarize and embed with a GPT-2-family model.",
        version="0.1.0",
        docs_url=None,  # ours, from a local copy of Swagger UI (serve/http/docs.py)
        redoc_url=None,
        # No redirects to `path/`: they are the only answers that would echo the Host header.
        redirect_slashes=False,
    )
    app.state.lmforge = state
    # The routes themselves, not include_router's lazy branch (FastAPI 0.16x): app.routes
    # stays the flat list of routes that the access metrics and the route listings read.
    for family in (native, openai, tasks, health):
        app.router.routes.extend(family.router.routes)
    openai_paths = paths(openai.router)
    install_error_handlers(app, openai_paths)
    if state is None or state.config.docs:
        install_docs(app)
    if state is None:
        return app
    install_model_schema(app, state)
    routes = paths(app.router)
    # Added innermost first: each add_middleware wraps what is there.
    app.add_middleware(BodyLimit, limit=state.config.max_body_bytes, metrics=state.metrics)
    if state.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=state.config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )

    def answer_error(exc: Exception, path: str) -> tuple[int, bytes]:
        error = as_api_error(exc, path in openai_paths)  # logs what it does not expect
        return error.status, json.dumps(error_body(error.kind, error.message, error.param)).encode()

    app.add_middleware(
        RequestContext,
        metrics=state.metrics,
        routes=routes,
        log_access=state.config.access_log,
        answer_error=answer_error,
    )
    return app


def paths(router: APIRouter) -> set[str]:
    return {route.path for route in router.routes if isinstance(route, Route)}
