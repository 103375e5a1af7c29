"""`lmforge serve`: resolve and verify each model, build its engine, and run the API under
uvicorn with a drain on SIGTERM/SIGINT: readiness turns 503 at once, new requests get 503,
accepted ones finish (up to --drain-seconds), then the process exits 0."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from lmforge.cards import ModelCard
from lmforge.config.serve import LOOPBACK, ServeConfig
from lmforge.errors import ConfigError
from lmforge.fsutil import sha256_file
from lmforge.logs import JsonFormatter
from lmforge.registry.resolve import resolve
from lmforge.serve.auth import load_keys
from lmforge.serve.engine import Engine
from lmforge.serve.middleware import RequestIdFilter
from lmforge.serve.models import ModelInfo, ServedModel, warm_up
from lmforge.serve.state import AppState

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

log = logging.getLogger(__name__)


def load(config: ServeConfig, ref: str, name: str | None = None) -> tuple[Engine, ModelInfo]:
    """Resolve and verify the model `ref` and build its engine; `name` is what requests call
    it (default: its registry name or dir name)."""
    model = resolve(ref)
    path = model.path
    # A ServeConfig is the engine's settings plus the server's; a model may have its own slots.
    slots = config.kv_slots_of().get(name or model.name, config.kv_slots)
    engine = Engine(path, dataclasses.replace(config, kv_slots=slots))
    card = ModelCard.read(path)
    weights = path / "model.safetensors"
    sha = (card.weights_sha256 if card else None) or sha256_file(weights)
    info = ModelInfo(
        name or model.name,
        model.version,
        sha,
        engine.max_seq_len,
        str(path),
        tuple(engine.labels),
        card.task if card else "lm",
        model.name if model.version else None,
    )
    return engine, info


def load_models(config: ServeConfig) -> list[ServedModel]:
    """One engine per model argument (loaded one after another), each with its loader for
    reloads; two models of one name are refused before any engine is built."""
    refs = config.named_refs()
    names = [name or resolve(ref).name for name, ref in refs]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(
            f"model: more than one model is called {', '.join(map(repr, twice))}",
            hint="name each model: lmforge serve NAME=REF NAME=REF",
        )
    if unknown := sorted(set(config.kv_slots_of()) - set(names)):
        raise ConfigError(
            f"model_kv_slots: no served model is called {', '.join(map(repr, unknown))}",
            hint=f"the served models are {', '.join(map(repr, names))}",
        )
    served = []
    for name, (_, ref) in zip(names, refs, strict=True):
        engine, info = load(config, ref, name)
        reload = partial(load, config, ref, name)
        served.append(ServedModel(engine, info, reload, config.drain_seconds, ref))
    return served


def check_exposure(config: ServeConfig, has_keys: bool) -> None:
    if has_keys:
        return
    if config.host not in LOOPBACK:
        raise ConfigError(
            f"host: refusing to listen on {config.host} without API keys",
            hint="set --api-keys-file FILE or LMFORGE_API_KEYS, or listen on 127.0.0.1",
        )
    log.warning("no API keys configured: serving without authentication, on loopback only")


def build_state(config: ServeConfig) -> AppState:
    keys = load_keys(config.api_keys_file, "LMFORGE_API_KEYS")
    admin_keys = load_keys(config.admin_keys_file, "LMFORGE_ADMIN_KEYS")
    check_exposure(config, bool(keys))
    models = load_models(config)
    state = AppState(models, config, keys, admin_keys)
    for model in models:
        model.engine.start()
        warm_up(model.engine)
    state.ready = True
    return state


def watch_alias(state: AppState, every: float, stop: threading.Event) -> None:
    """Reload a model whenever its registry alias points at another version (one model at a
    time; the others keep serving). Models given as dirs are not watched."""
    from lmforge.registry.refs import is_registry_ref, parse_ref
    from lmforge.registry.store import client
    from lmforge.registry.versions import get_version

    while not stop.wait(every):
        for model in state.models:
            ref = model.ref
            if not is_registry_ref(ref) or state.draining:
                continue
            try:
                version = str(get_version(client(), parse_ref(ref)).version)
                if version != model.info.version:
                    log.info("%s now points at version %s: reloading %s", ref, version, model.name)
                    state.reload(model.name)
            except Exception:
                log.exception("watching %s failed; will try again", ref)


def setup_access_log() -> None:
    """Request IDs on every log line; access lines always as JSON, whatever the CLI's format."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("lmforge.access")
    access.handlers = [handler]
    access.propagate = False


def uvicorn_config(app: ASGIApp, config: ServeConfig) -> uvicorn.Config:
    """uvicorn's settings: the transport limits (head and body deadlines, idle keep-alive,
    the connection cap, whose 503 is uvicorn's own) and the proxies believed."""
    import uvicorn

    from lmforge.serve.transport import deadline_protocol

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=deadline_protocol(config.header_timeout, config.body_timeout),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(config.drain_seconds) + 1,
        timeout_keep_alive=config.keep_alive_timeout,
        limit_concurrency=config.max_connections or None,
        # uvicorn believes X-Forwarded-* from 127.0.0.1 unless told otherwise: any local
        # process could then pose as any client.
        proxy_headers=bool(config.forwarded_allow_ips),
        forwarded_allow_ips=config.forwarded_allow_ips or None,
    )


def serve(config: ServeConfig) -> None:
    import uvicorn

    from lmforge.serve.http.app import create_app

    setup_access_log()
    state = build_state(config)
    app = create_app(state)

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if state.draining:
                self.should_exit = self.force_exit = True
                return
            log.info("signal %d: draining for up to %.0f s", sig, config.drain_seconds)
            state.draining = True
            threading.Thread(target=self._drain, daemon=True).start()

        def _drain(self) -> None:
            deadline = time.monotonic() + config.drain_seconds
            while time.monotonic() < deadline and not state.idle():
                time.sleep(0.05)
            self.should_exit = True

    server = DrainingServer(uvicorn_config(app, config))
    stop_watching = threading.Event()
    if config.watch_alias:
        from lmforge.registry.refs import is_registry_ref

        if not any(is_registry_ref(model.ref) for model in state.models):
            raise ConfigError(
                "watch_alias: needs a model given by registry reference, such as models:/NAME@ALIAS"
            )
        threading.Thread(
            target=watch_alias, args=(state, config.watch_alias, stop_watching), daemon=True
        ).start()
    for model in state.models:
        log.info(
            "serving %s (%s, version %s, sha256 %s) on http://%s:%d",
            model.name,
            model.info.kind,
            model.info.version or "-",
            model.info.sha256[:12],
            config.host,
            config.port,
        )
    try:
        server.run()
    finally:
        stop_watching.set()
        state.shutdown()
    log.info("stopped")
