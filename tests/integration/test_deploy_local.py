"""`lmforge deploy local` with the real nginx in front of real workers: spreading, streaming,
a worker killed under load, its restart, and nginx's own body limit."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import API_KEY

pytestmark = pytest.mark.integration


def worker_requests(port: int) -> float:
    """Generate requests a worker has answered, from its own /metrics (not exposed by nginx)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith('lmforge_requests_total{route="/v1/generate"'):
            total += float(line.rsplit(" ", 1)[1])
    return total


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "deploy.json").read_text())


def client(url: str, **kw) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, **kw)


BODY = {"prompt": "the cat", "max_new_tokens": 16, "ignore_eos": True}


def test_requests_spread_across_workers(deployment) -> None:
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


def test_streaming_arrives_token_by_token_through_nginx(deployment) -> None:
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


def test_metrics_and_admin_are_not_exposed_and_bodies_are_limited(deployment) -> None:
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


def test_a_killed_worker_fails_only_its_requests_and_comes_back(deployment) -> None:
    url, run_dir, _ = deployment
    victim = state(run_dir)["workers"][0]
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with client(url, timeout=60) as c:
            while not stop.is_set():
                try:
                    code = c.post("/v1/generate", json=BODY).status_code
                except httpx.HTTPError:
                    code = -1
                results.append((time.monotonic(), code))

    senders = [threading.Thread(target=load) for _ in range(4)]
    for s in senders:
        s.start()
    time.sleep(1.5)
    killed_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(3)
    stop.set()
    for s in senders:
        s.join()
    failed = [(t, code) for t, code in results if code != 200]
    # At most the requests in flight on that worker (one per sender) fail ...
    assert len(failed) <= 4, failed
    assert all(t >= killed_at for t, _ in failed)
    # ... and requests sent after the kill settled all succeed.
    later = [code for t, code in results if t > killed_at + 1.0]
    assert later and all(code == 200 for code in later)
    print(f"sent {len(results)}, failed {len(failed)} (all in flight on the killed worker)")

    # The supervisor restarts the worker on its port, and it gets traffic again.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        restarted = next(w for w in state(run_dir)["workers"] if w["port"] == victim["port"])
        try:
            if (
                restarted["pid"] != victim["pid"]
                and httpx.get(f"http://127.0.0.1:{victim['port']}/readyz", timeout=1).status_code
                == 200
            ):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        pytest.fail("the killed worker was not restarted")
    time.sleep(5.5)  # nginx's fail_timeout: the worker is tried again after it
    before = worker_requests(victim["port"])
    with client(url, timeout=60) as c:
        assert all(c.post("/v1/generate", json=BODY).status_code == 200 for _ in range(12))
    assert worker_requests(victim["port"]) - before >= 3
