"""Start `lmforge serve` as a real subprocess on a free loopback port, for the API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 60, every: float = 0.02
) -> None:
    """Poll `condition` every `every` seconds until it holds; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Server:
    def __init__(self, model: str | Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"lmforge-serve-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lmforge", "serve", str(model), "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            env={
                **os.environ,
                "LMFORGE_NO_PROGRESS": "1",
                "LMFORGE_API_KEYS": f"{API_KEY},{OTHER_KEY}",
                "LMFORGE_ADMIN_KEYS": ADMIN_KEY,
                **(env or {}),
            },
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"lmforge serve exited early:\n{self.stderr()}")
            return self.readiness() == 200

        try:
            wait_for(ready, "/readyz to answer 200", timeout, every=0.2)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}:\n{self.stderr()}") from None

    def readiness(self) -> int | None:
        """The status /readyz answers now; None while nothing listens."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code
        except httpx.HTTPError:
            return None

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-5000:]

    def client(self, key: str | None = API_KEY, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 60, **kw})

    def metric(self, name: str) -> float:
        text = self.client().get("/metrics").text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def steady_load(server: Server, clients: int = 3) -> Iterator[list[int]]:
    """Clients generating back to back until the block ends; yields the statuses of the
    requests that did not answer 200."""
    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with server.client() as client:
            while not stop.is_set():
                answer = client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 8})
                if answer.status_code != 200:
                    failures.append(answer.status_code)

    workers = [threading.Thread(target=load) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        yield failures
    finally:
        stop.set()
        for worker in workers:
            worker.join()
