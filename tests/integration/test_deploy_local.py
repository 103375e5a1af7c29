"""`lmforge deploy local` with the real nginx in front of real workers: spreading, streaming,
a worker killed under load, its restart, and nginx's own body limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.conftest import wait_for
from tests.integration.servers import API_KEY

Deployment = tuple[str, Path, subprocess.Popen[bytes]]

pytestmark = pytest.mark.integration


def worker_requests(port: int) -> float:
    """Generate requests a worker has answered, from its own /metrics (not exposed by nginx)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("lmforge_requests_total{") and 'route="/v1/generate"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "deploy.json").read_text())


def client(url: str, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, **kw)


BODY = {"prompt": "the cat", "max_new_tokens": 16, "ignore_eos": True}


def test_requests_spread_across_workers(deployment: Deployment) -> None:
    url, run_dir, _ = deployment
    ports = [w["port"] for w in state(run_dir)["workers"]]
    before = [worker_requests(p) for p in ports]

    def send(n: int) -> list[int]:
        with client(url, timeout=60) as c:
            return [c.post("/v1/generate", json=BODY).status_code for _ in range(n)]

    threads_out: list[list[int]] = []
    threads = [threading.Thread(target=lambda: threads_out.append(send(10))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == 200 for out in threads_out for code in out)
    served = [worker_requests(p) - b for p, b in zip(ports, before, strict=True)]
    assert sum(served) == 40
    assert min(served) >= 10, served


def test_streaming_arrives_token_by_token_through_nginx(deployment: Deployment) -> None:
    url, _, _ = deployment
    body = {**BODY, "max_new_tokens": 100, "stream": True}
    arrivals = []
    with client(url, timeout=60) as c, c.stream("POST", "/v1/generate", json=body) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter())
    assert len(arrivals) > 20
    # Unbuffered: the events arrive spread over the generation, not in one burst at the end.
    spread = arrivals[-1] - arrivals[0]
    assert spread > 0 and sum(1 for t in arrivals if t < arrivals[0] + spread / 2) > 5


def test_metrics_and_admin_are_not_exposed_and_bodies_are_limited(deployment: Deployment) -> None:
    url, _, _ = deployment
    with client(url, timeout=30) as c:
        assert c.get("/metrics").status_code == 404
        assert c.post("/admin/reload").status_code == 404
        too_big = c.post("/v1/generate", content=b"x" * 20000)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["type"] == "request_too_large"
        assert c.get("/readyz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
            "abc-123"
        )


def exited(pid: int) -> bool:
    """The process is gone or a zombie: it has exited and its sockets are closed (a killed
    worker stays a zombie until the supervisor reaps it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_worker_fails_only_its_requests_and_comes_back(deployment: Deployment) -> None:
    url, run_dir, _ = deployment
    victim = state(run_dir)["workers"][0]
    # (sent, answered, status) of every request, status -1 when the connection failed.
    results: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with client(url, timeout=60) as c:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    code = c.post("/v1/generate", json=BODY).status_code
                except httpx.HTTPError:
                    code = -1
                results.append((sent, time.monotonic(), code))

    def sent_after(moment: float) -> list[int]:
        return [code for sent, _, code in list(results) if sent > moment]

    senders = [threading.Thread(target=load) for _ in range(4)]
    for s in senders:
        s.start()
    try:
        wait_for(lambda: len(results) >= 8, 60, "the load to flow through nginx")
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: exited(victim["pid"]), 30, f"the killed worker {victim['pid']} to exit")
        dead_at = time.monotonic()

        def settled() -> float:
            """When the last failed request was answered (or the worker was seen dead): until
            nginx has seen the worker fail, a request can still be passed to it."""
            failures = [answered for _, answered, code in list(results) if code != 200]
            return max([dead_at, *failures])

        wait_for(
            lambda: len(sent_after(settled())) >= 12, 60, "the load to flow again after the kill"
        )
    finally:
        stop.set()
        for s in senders:
            s.join()
    failed = [(answered, code) for _, answered, code in results if code != 200]
    # Only the requests on that worker (in flight, or passed to it before nginx saw it fail:
    # at most one per sender) fail, and the load flows again after them (waited for above).
    assert len(failed) <= 4, failed
    assert all(answered >= killed_at for answered, _ in failed)
    print(f"sent {len(results)}, failed {len(failed)} (all on the killed worker)")

    # The supervisor restarts the worker on its port, and it gets traffic again.
    def restarted() -> bool:
        worker = next(w for w in state(run_dir)["workers"] if w["port"] == victim["port"])
        return worker["pid"] != victim["pid"] and ready(victim["port"])

    wait_for(
        restarted, 120, "the supervisor to restart the killed worker", run_dir / "deploy.stderr"
    )
    # nginx left the worker alone for its fail_timeout after the failures; wait until it sends
    # the worker requests again rather than for a fixed time.
    routed = worker_requests(victim["port"])

    def routed_again() -> bool:
        with client(url, timeout=60) as c:
            assert c.post("/v1/generate", json=BODY).status_code == 200
        return worker_requests(victim["port"]) > routed

    wait_for(routed_again, 60, "nginx to send requests to the restarted worker")
    before = worker_requests(victim["port"])
    with client(url, timeout=60) as c:
        assert all(c.post("/v1/generate", json=BODY).status_code == 200 for _ in range(12))
    assert worker_requests(victim["port"]) - before >= 3
