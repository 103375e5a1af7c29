"""Options of `lmforge deploy local`."""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import option


@dataclass
class LocalDeployConfig:
    """Options of `lmforge deploy local`."""

    model: str = option("", "Model dir or registry reference (models:/NAME@ALIAS).")
    workers: int = option(2, "lmforge serve workers (threads per worker: cores / workers).")
    host: str = option("127.0.0.1", "Address nginx listens on (beyond loopback needs API keys).")
    port: int = option(8080, "Port nginx listens on.")
    run_dir: str = option(".lmforge/deploy", "Where nginx.conf, logs and deploy.json go.")
    max_body: str = option("1m", "nginx client_max_body_size (413 above it).")
    rate_per_ip: int = option(50, "Requests per second one client IP may send (429 above).")
    serve_config: str = option("", "A serve.yaml every worker uses (e.g. configs/serve.yaml).")
    model_name: str = option("", "Name shown in /v1/models.")
    startup_timeout: float = option(300.0, "Seconds the workers get to load and warm up.")
    drain_seconds: float = option(30.0, "Seconds a stopping worker gets to finish requests.")

    def problems(self) -> list[str]:
        out = []
        if not self.model:
            out.append("model: MODEL is required")
        if not 1 <= self.workers <= 64:
            out.append(f"workers: {self.workers} must be between 1 and 64")
        if not 0 < self.port < 65536:
            out.append(f"port: {self.port} is not a TCP port")
        if self.rate_per_ip < 1:
            out.append(f"rate_per_ip: {self.rate_per_ip} must be at least 1")
        if self.startup_timeout <= 0 or self.drain_seconds <= 0:
            out.append("startup_timeout and drain_seconds must be positive")
        return out
