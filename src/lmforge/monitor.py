"""`lmforge monitor`: poll a server's /ping (and optionally time a tiny generate against an
SLO), one JSON line per poll on stdout; exit 1 once enough consecutive polls failed."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from lmforge.config.serve import MonitorConfig

if TYPE_CHECKING:
    import httpx

HEALTHY, ALARM = 0, 1


def poll(client: httpx.Client, config: MonitorConfig, key: str) -> dict[str, Any]:
    import httpx

    record: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    started = time.perf_counter()
    try:
        response = client.get("/ping")
        record["status"] = response.status_code
        record["latency_ms"] = round(1000 * (time.perf_counter() - started), 1)
        body = response.json()
        record["message"] = body.get("message", "")
        record["ok"] = response.status_code == 200 and body.get("success") is True
    except (httpx.HTTPError, ValueError) as exc:
        record.update(ok=False, status=None, message=f"{type(exc).__name__}: {exc}")
        return record
    if record["ok"] and config.probe_slo:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        started = time.perf_counter()
        try:
            response = client.post(
                "/v1/generate",
                json={"prompt": "Hello", "max_new_tokens": 4, "temperature": 0},
                headers=headers,
            )
            took = time.perf_counter() - started
            record["probe_ms"] = round(1000 * took, 1)
            if response.status_code != 200:
                record.update(ok=False, message=f"probe answered {response.status_code}")
            elif took > config.probe_slo:
                record.update(
                    ok=False, message=f"probe took {took:.2f} s > SLO {config.probe_slo} s"
                )
        except httpx.HTTPError as exc:
            record.update(ok=False, message=f"probe failed: {type(exc).__name__}: {exc}")
    return record


def monitor(config: MonitorConfig) -> int:
    """Returns the exit code: 1 when the alarm was raised, 0 when `count` polls ended."""
    import httpx

    key = config.api_key or os.environ.get("LMFORGE_API_KEY", "")
    failures = polls = 0
    with httpx.Client(base_url=config.url.rstrip("/"), timeout=config.timeout) as client:
        while True:
            record = poll(client, config, key)
            failures = 0 if record["ok"] else failures + 1
            record["consecutive_failures"] = failures
            polls += 1
            if failures >= config.failures:
                record["alarm"] = True
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            if failures >= config.failures:
                return ALARM
            if config.count and polls >= config.count:
                return HEALTHY
            time.sleep(config.interval)
