"""The real app in-process over a real engine on a tiny model, for the HTTP tests: one engine
per test module, and a fresh app state (config, keys, limits, flags) per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from lmforge.config.serve import ServeConfig
from lmforge.serve.auth import KeyRing
from lmforge.serve.engine import Engine
from lmforge.serve.http.app import create_app
from lmforge.serve.models import ModelInfo, ServedModel, warm_up
from lmforge.serve.server import load
from lmforge.serve.state import AppState

API_KEY = "test-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"


@contextmanager
def running_engine(model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    engine, info = load(ServeConfig(model=[str(model)], kv_slots=4), str(model))
    engine.start()
    warm_up(engine)
    try:
        yield engine, info
    finally:
        engine.shutdown(drain_seconds=0)


def app_state(*served: tuple[Engine, ModelInfo], **config: Any) -> AppState:
    """A ready app state over the engines (one per served model); `config` overrides
    ServeConfig's defaults."""
    settings = ServeConfig(model=[info.path for _, info in served], **config)
    models = [ServedModel(engine, info) for engine, info in served]
    state = AppState(models, settings, KeyRing([API_KEY]), KeyRing([ADMIN_KEY]))
    state.ready = True
    return state


def client(state: AppState, key: str | None = API_KEY) -> TestClient:
    """A client of the whole app (middleware included); 500s come back as answers."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(create_app(state), headers=headers, raise_server_exceptions=False)
