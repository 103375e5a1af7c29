"""What one API process holds: the engine serving now, the model it serves, keys, limits,
metrics, and the readiness and drain flags. Hot swaps replace the engine atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lmforge.config.serve import ServeConfig
from lmforge.errors import EngineError
from lmforge.serve.auth import KeyRing
from lmforge.serve.engine import Engine
from lmforge.serve.limits import RateLimiter
from lmforge.serve.metrics import Metrics
from lmforge.serve.request import Kind, SamplingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """The served model as /v1/models shows it; `labels` (a classifier's, in id order) make
    it a classifier, else it is a generator."""

    name: str
    version: str | None
    sha256: str
    context_length: int
    path: str
    labels: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "classifier" if self.labels else "generator"


Loader = Callable[[], tuple[Engine, ModelInfo]]


class AppState:
    def __init__(
        self,
        engine: Engine,
        model: ModelInfo,
        config: ServeConfig,
        keys: KeyRing,
        admin_keys: KeyRing,
        loader: Loader | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.config = config
        self.keys = keys
        self.admin_keys = admin_keys
        self.loader = loader
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate_requests, config.rate_tokens)
        self.ready = False
        self.draining = False
        self.started = int(time.time())
        self._leases: dict[int, int] = {}
        self._lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self.show_model()

    def show_model(self) -> None:
        self.metrics.model.info(
            {
                "name": self.model.name,
                "version": self.model.version or "",
                "sha256": self.model.sha256,
            }
        )

    @contextmanager
    def lease(self) -> Iterator[Engine]:
        """The engine to use for one HTTP request; a swap waits until its last lease ends
        before shutting the old engine down."""
        with self._lock:
            engine = self.engine
            self._leases[id(engine)] = self._leases.get(id(engine), 0) + 1
        try:
            yield engine
        finally:
            with self._lock:
                self._leases[id(engine)] -= 1

    def reload(self) -> ModelInfo:
        """Load the model again (an alias may point at a new version), warm it up, swap it in,
        then retire the old engine once its requests are done. Blocking; one at a time."""
        if self.loader is None:
            raise EngineError("this server has no loader to reload from")
        with self._swap_lock:
            engine, model = self.loader()
            engine.start()
            warm_up(engine)
            with self._lock:
                old, self.engine, self.model = self.engine, engine, model
            self.show_model()
            log.info("now serving %s version %s (%s)", model.name, model.version, model.sha256)
            deadline = time.monotonic() + self.config.drain_seconds
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._leases.get(id(old)):
                        break
                time.sleep(0.02)
            old.shutdown(drain_seconds=self.config.drain_seconds)
            self._leases.pop(id(old), None)
            return model

    def healthy(self) -> bool:
        return self.engine.alive

    def accepting(self) -> bool:
        return self.ready and not self.draining and self.engine.alive


def warm_up(engine: Engine) -> None:
    """One tiny request of the model's kind (a generation, or a classification for a
    classifier) so that the first real request does not pay for lazy set-up."""
    if engine.labels:
        engine.run(engine.request("Hello", Kind.CLASSIFY))
        return
    engine.run(
        engine.request("Hello", Kind.GENERATE, SamplingParams(max_new_tokens=2, temperature=0))
    )
