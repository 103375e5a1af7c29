"""`lmforge deploy local`: N `lmforge serve` workers on loopback ports behind the system's
nginx, supervised: a worker that dies is restarted; Ctrl-C or SIGTERM drains and stops all."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from lmforge.apikeys import check_keys, env_keys
from lmforge.config.deploy import LocalDeployConfig
from lmforge.config.serve import LOOPBACK
from lmforge.errors import ConfigError, LmforgeError
from lmforge.fsutil import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str:
    found = shutil.which("nginx") or next((p for p in NGINX_PATHS if Path(p).exists()), None)
    if found is None:
        raise LmforgeError(
            "nginx is not installed (not on PATH nor in /usr/sbin)",
            hint="install it: sudo apt-get install nginx (Debian/Ubuntu) or brew install nginx",
        )
    return found


class NginxTemplate(Template):
    """`%{field}` placeholders: nginx itself uses `$name` and `@name`."""

    delimiter = "%"


def render_nginx(
    run_dir: str,
    listen: str,
    upstreams: list[str],
    *,
    max_body: str = "1m",
    read_timeout: int = 600,
    requests_per_second: int = 50,
    burst: int = 100,
    connections_per_ip: int = 64,
) -> str:
    template = resources.files("lmforge.deploy").joinpath("nginx.conf.template").read_text()
    servers = "\n".join(
        f"        server {address} max_fails=2 fail_timeout=5s;" for address in upstreams
    )
    return NginxTemplate(template).substitute(
        run_dir=run_dir,
        listen=listen,
        servers=servers,
        max_body=max_body,
        read_timeout=read_timeout,
        requests_per_second=requests_per_second,
        burst=burst,
        connections_per_ip=connections_per_ip,
    )


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            status: int = answer.status  # urlopen is typed as returning Any
            return status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Worker:
    port: int
    threads: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


KEY_VARIABLES = ("LMFORGE_API_KEYS", "LMFORGE_ADMIN_KEYS")


def check_exposure(host: str) -> None:
    """Refuse placeholder keys anywhere, and a non-loopback `host` without a real key: the
    workers inherit these variables, and a set-but-empty one leaves them unauthenticated."""
    for variable in KEY_VARIABLES:
        check_keys(env_keys(variable), variable)
    if host in LOOPBACK:
        return
    if not env_keys("LMFORGE_API_KEYS"):
        given = os.environ.get("LMFORGE_API_KEYS")
        what = "is not set" if given is None else f"holds no key ({given!r})"
        raise ConfigError(
            f"host: refusing to expose {host} without API keys: LMFORGE_API_KEYS {what}",
            hint="set LMFORGE_API_KEYS to comma-separated keys (the workers inherit it), "
            "or keep --host 127.0.0.1",
        )


class LocalDeployment:
    def __init__(self, config: LocalDeployConfig) -> None:
        check_exposure(config.host)
        self.config = config
        self.nginx = find_nginx()
        self.run_dir = Path(config.run_dir).resolve()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        threads = max(1, cores // config.workers)
        self.workers = [Worker(port, threads) for port in free_ports(config.workers)]
        self.nginx_process: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def start_worker(self, worker: Worker) -> None:
        log_file = (self.run_dir / f"worker-{worker.port}.log").open("a")
        command = [sys.executable, "-m", "lmforge", "--log-json", "serve", self.config.model]
        # nginx is the one proxy in front: trust its X-Forwarded-For, so access logs show
        # the real client.
        command += ["--forwarded-allow-ips", "127.0.0.1"]
        command += ["--port", str(worker.port), "--threads", str(worker.threads)]
        command += ["--model-name", self.config.model_name] if self.config.model_name else []
        command += ["--config", self.config.serve_config] if self.config.serve_config else []
        worker.process = subprocess.Popen(command, stdout=log_file, stderr=log_file)

    def wait_ready(self, workers: list[Worker], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(workers)
        while pending:
            for worker in list(pending):
                if worker.process is not None and worker.process.poll() is not None:
                    log_path = self.run_dir / f"worker-{worker.port}.log"
                    raise LmforgeError(
                        f"worker on port {worker.port} exited with {worker.process.returncode}",
                        hint=f"see {log_path}",
                    )
                if ready(worker.port):
                    pending.remove(worker)
            if time.monotonic() > deadline:
                raise LmforgeError(f"workers not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def write_state(self) -> None:
        write_json_atomic(
            self.run_dir / "deploy.json",
            {
                "url": f"http://127.0.0.1:{self.config.port}",
                "nginx_pid": self.nginx_process.pid if self.nginx_process else None,
                "workers": [
                    {
                        "port": w.port,
                        "pid": w.process.pid if w.process else None,
                        "restarts": w.restarts,
                    }
                    for w in self.workers
                ],
            },
        )

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for worker in self.workers:
            self.start_worker(worker)
        self.wait_ready(self.workers, self.config.startup_timeout)
        conf = self.run_dir / "nginx.conf"
        write_text_atomic(
            conf,
            render_nginx(
                str(self.run_dir),
                f"{self.config.host}:{self.config.port}",
                [f"127.0.0.1:{w.port}" for w in self.workers],
                max_body=self.config.max_body,
                requests_per_second=self.config.rate_per_ip,
                burst=2 * self.config.rate_per_ip,
            ),
        )
        check = subprocess.run(
            [self.nginx, "-t", "-p", str(self.run_dir), "-c", str(conf)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise ConfigError(f"nginx rejected {conf}: {check.stderr.strip()}")
        self.nginx_process = subprocess.Popen(
            [self.nginx, "-p", str(self.run_dir), "-c", str(conf), "-g", "daemon off;"],
            stderr=(self.run_dir / "nginx.stderr").open("a"),
        )
        self.write_state()
        log.info(
            "nginx on http://%s:%d over %d workers (ports %s); logs in %s",
            self.config.host,
            self.config.port,
            len(self.workers),
            ", ".join(str(w.port) for w in self.workers),
            self.run_dir,
        )

    def supervise(self) -> None:
        """Restart workers that die (after a short back-off); stop when asked."""
        while not self.stopping:
            for worker in self.workers:
                if worker.process is not None and worker.process.poll() is not None:
                    log.warning(
                        "worker on port %d exited with %s; restarting it",
                        worker.port,
                        worker.process.returncode,
                    )
                    worker.restarts += 1
                    time.sleep(min(5.0, 0.5 * worker.restarts))
                    self.start_worker(worker)
                    self.write_state()
            if self.nginx_process is not None and self.nginx_process.poll() is not None:
                raise LmforgeError(f"nginx exited with {self.nginx_process.returncode}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Drain: workers first get SIGTERM (readiness 503, accepted requests finish), then
        nginx quits gracefully."""
        self.stopping = True
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            if worker.process is not None:
                try:
                    worker.process.wait(timeout=self.config.drain_seconds + 10)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
        if self.nginx_process is not None and self.nginx_process.poll() is None:
            self.nginx_process.send_signal(signal.SIGQUIT)
            try:
                self.nginx_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx_process.kill()


def deploy_local(config: LocalDeployConfig) -> None:
    deployment = LocalDeployment(config)

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: draining workers and stopping nginx", signum)
        deployment.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        deployment.start()
        deployment.supervise()
    finally:
        deployment.stop()
    log.info("stopped")
