"""What one API process holds: the models it serves (each with its own engine, swapped on its
own), keys, limits, metrics, and the readiness and drain flags."""

from __future__ import annotations

import logging
import time

from lmforge.config.serve import ServeConfig
from lmforge.serve.auth import KeyRing
from lmforge.serve.limits import RateLimiter
from lmforge.serve.metrics import Metrics
from lmforge.serve.models import ModelChoiceError, ModelInfo, ModelSet, ServedModel

log = logging.getLogger(__name__)


class AppState:
    def __init__(
        self,
        models: list[ServedModel],
        config: ServeConfig,
        keys: KeyRing,
        admin_keys: KeyRing,
    ) -> None:
        self.models = ModelSet(models)
        self.config = config
        self.keys = keys
        self.admin_keys = admin_keys
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate_requests, config.rate_tokens)
        self.ready = False
        self.draining = False
        self.started = int(time.time())
        for model in self.models:
            self.show_model(model.info)

    def show_model(self, info: ModelInfo) -> None:
        self.metrics.show_model(info.name, info.version or "", info.sha256, info.kind)

    def reload(self, name: str | None) -> ModelInfo:
        """Reload the model called `name` (None: the only one; with several, a name is
        needed) and swap it in while the others keep serving."""
        if name is None:
            if len(self.models) != 1:
                names = ", ".join(repr(m.name) for m in self.models)
                raise ModelChoiceError(f"model: name the model to reload, one of {names}")
            (model,) = self.models
        else:
            model = self.models.named(name)
        info = model.reload()
        self.show_model(info)
        return info

    def dead(self) -> list[str]:
        """'NAME: why' for each model whose engine loop has died."""
        return [f"{m.name}: {m.engine.dead}" for m in self.models if not m.alive]

    def healthy(self) -> bool:
        return all(model.alive for model in self.models)

    def accepting(self) -> bool:
        return self.ready and not self.draining and self.healthy()

    def idle(self) -> bool:
        """No engine has a request waiting or running."""
        stats = [m.engine.snapshot() for m in self.models]
        return not any(s.waiting or s.running for s in stats)

    def shutdown(self) -> None:
        for model in self.models:
            model.engine.shutdown(drain_seconds=0)
