"""Probes (/ping, /healthz, /readyz), Prometheus /metrics, the admin /admin/reload and the
playground page at /."""

from __future__ import annotations

import asyncio
from importlib import resources

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lmforge.serve import schemas as s
from lmforge.serve.http.deps import authorize_admin, authorize_metrics, choice_error, state_of
from lmforge.serve.http.errors import documented
from lmforge.serve.models import ModelChoiceError

router = APIRouter()
PLAYGROUND = resources.files("lmforge.serve").joinpath("playground.html").read_text()


@router.post(
    "/admin/reload",
    response_model=s.ReloadResponse,
    tags=["admin"],
    dependencies=[Depends(authorize_admin)],
    responses=documented(400, 401, 404, 500, 503),
)
async def reload(
    request: Request,
    model: str | None = Query(
        None, description="The served model to reload; needed when the server serves several."
    ),
) -> dict[str, object]:
    """Load one model again (an alias may have moved), warm it up and swap it in; its requests
    in flight finish on the old engine, and the other models keep serving."""
    try:
        info = await asyncio.to_thread(state_of(request).reload, model)
    except ModelChoiceError as exc:
        raise choice_error(exc) from None
    return {"model": info.name, "version": info.version, "sha256": info.sha256}


@router.get("/", include_in_schema=False)
async def playground_page() -> HTMLResponse:
    """The web playground: one self-contained page, no assets from elsewhere."""
    return HTMLResponse(PLAYGROUND)


@router.get(
    "/ping",
    tags=["health"],
    response_model=s.PingResponse,
    responses={503: {"model": s.PingResponse, "description": "Not ready"}},
)
async def ping(request: Request) -> JSONResponse:
    """The monitor contract: `{"success": bool, "message": str}`."""
    state = state_of(request)
    ok = state.accepting()
    message = "ready" if ok else "draining" if state.draining else "not ready"
    if not state.healthy():
        message = "engine dead: " + "; ".join(state.dead())
    return JSONResponse({"success": ok, "message": message}, status_code=200 if ok else 503)


@router.get(
    "/healthz",
    tags=["health"],
    response_model=s.ProbeStatus,
    responses={503: {"model": s.ProbeStatus, "description": "The engine loop is dead"}},
)
async def healthz(request: Request) -> dict[str, str] | JSONResponse:
    """Liveness: every model's engine loop is running."""
    state = state_of(request)
    if state.healthy():
        return {"status": "alive"}
    return JSONResponse({"status": "dead", "reason": "; ".join(state.dead())}, status_code=503)


@router.get(
    "/readyz",
    tags=["health"],
    response_model=s.ProbeStatus,
    responses={503: {"model": s.ProbeStatus, "description": "Loading or draining"}},
)
async def readyz(request: Request) -> dict[str, str] | JSONResponse:
    """Readiness: every model loaded and warmed up, their engines alive, not draining."""
    state = state_of(request)
    if state.accepting():
        return {"status": "ready"}
    reason = "draining" if state.draining else "engine dead" if not state.healthy() else "loading"
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


@router.get(
    "/metrics",
    tags=["health"],
    dependencies=[Depends(authorize_metrics)],
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **documented(401),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (`lmforge_*`), labelled by `model` where they are a model's."""
    state = state_of(request)
    for served in state.models:
        state.metrics.refresh(served.name, served.engine.snapshot())
    state.metrics.ready.set(1 if state.accepting() else 0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
