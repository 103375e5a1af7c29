"""Options of `lmforge deploy local`."""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import option


@dataclass
class LocalDeployConfig:
    """Options of `lmforge deploy local`."""

    model: str = option("", "Model dir or registry reference (models:/NAME@ALIAS).")
    workers: int = option(
        2, "lmforge serve workers (threads per worker: cores / workers).", ge=1, le=64
    )
    host: str = option("127.0.0.1", "Address nginx listens on (beyond loopback needs API keys).")
    port: int = option(8080, "Port nginx listens on.", ge=1, le=65535)
    run_dir: str = option(".lmforge/deploy", "Where nginx.conf, logs and deploy.json go.")
    max_body: str = option("1m", "nginx client_max_body_size (413 above it).")
    rate_per_ip: int = option(50, "Requests per second one client IP may send (429 above).", ge=1)
    serve_config: str = option("", "A serve.yaml every worker uses (e.g. configs/serve.yaml).")
    model_name: str = option("", "Name shown in /v1/models.")
    startup_timeout: float = option(300.0, "Seconds the workers get to load and warm up.", gt=0)
    drain_seconds: float = option(30.0, "Seconds a stopping worker gets to finish requests.", gt=0)

    def problems(self) -> list[str]:
        return [] if self.model else ["model: MODEL is required"]
