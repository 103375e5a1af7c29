"""`lmforge monitor`: poll a server's /ping (and optionally time a tiny generate against an
SLO, and with `--drift` compare its prompt NLL histogram with the eval reference), one JSON line
per poll on stdout; exit 1 once enough consecutive polls failed or the input drifted."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.config.serve import MonitorConfig
from lmforge.drift import REFERENCE_TAG, NllHistogram, psi
from lmforge.errors import ConfigError, RegistryError

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
        watch = DriftWatch(config, client, key) if config.drift else None
        while True:
            record = poll(client, config, key)
            failures = 0 if record["ok"] else failures + 1
            record["consecutive_failures"] = failures
            polls += 1
            if watch is not None and record["ok"]:
                record["drift"] = watch.check()
            drifted = bool(record.get("drift", {}).get("drifted"))
            if failures >= config.failures or drifted:
                record["alarm"] = True
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            if failures >= config.failures or drifted:
                return ALARM
            if config.count and polls >= config.count:
                return HEALTHY
            time.sleep(config.interval)


class DriftWatch:
    """The eval reference, read once, and each poll's comparison of the server's histogram of
    sampled prompt NLLs (all of it, or what the last `drift_window` polls added) with it."""

    def __init__(self, config: MonitorConfig, client: httpx.Client, key: str) -> None:
        self.config = config
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.where = config.reference
        self.name = ""
        self.reference: NllHistogram | None = None  # read at the first healthy poll
        self.history: deque[NllHistogram] = deque(maxlen=config.drift_window + 1)

    def _served_version(self) -> str:
        models = self.client.get("/v1/models", headers=self.headers)
        models.raise_for_status()
        (served, *_) = models.json()["data"]
        if not served.get("version"):
            raise ConfigError(
                f"the server serves {served['id']}, a model dir with no registry record",
                hint="give --reference models:/NAME@ALIAS or an eval report dir",
            )
        return f"models:/{served['id']}/{served['version']}"

    def check(self) -> dict[str, Any]:
        """This poll's verdict; a server whose /metrics or /v1/models cannot be read gives
        none (the poll itself says whether the server is healthy)."""
        import httpx

        try:
            if self.reference is None:
                self.where = self.where or self._served_version()
                self.name, self.reference = read_reference(self.where)
            return self._compare(self.reference, self.live())
        except (httpx.HTTPError, ValueError) as exc:
            return {"drifted": False, "error": f"{type(exc).__name__}: {exc}"}

    def _compare(self, reference: NllHistogram, live: NllHistogram) -> dict[str, Any]:
        if self.config.drift_window:
            self.history.append(live)
            live = live.minus(self.history[0])
        out: dict[str, Any] = {
            "reference": self.where,
            "tokens": live.tokens,
            "reference_tokens": reference.tokens,
            "live_mean_nll": live.mean_nll,
            "reference_mean_nll": reference.mean_nll,
            "threshold": self.config.drift_threshold,
            "psi": None,
            "drifted": False,
        }
        if live.tokens < self.config.drift_min_tokens:
            out["message"] = (
                f"{live.tokens} prompt tokens scored, fewer than --drift-min-tokens "
                f"{self.config.drift_min_tokens}: no verdict yet (is --drift-sample 0?)"
            )
            return out
        out["psi"] = round(psi(reference.counts, live.counts), 4)
        out["drifted"] = out["psi"] > self.config.drift_threshold
        return out

    def live(self) -> NllHistogram:
        """The server's `lmforge_prompt_nll` for the reference's model (or its only model)."""
        from prometheus_client.parser import text_string_to_metric_families

        response = self.client.get("/metrics", headers=self.headers)
        response.raise_for_status()
        series: dict[str, dict[float, float]] = {}
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            if family.name != "lmforge_prompt_nll":
                continue
            for sample in family.samples:
                model = sample.labels.get("model", "")
                if sample.name.endswith("_bucket"):
                    series.setdefault(model, {})[float(sample.labels["le"])] = sample.value
                elif sample.name.endswith("_sum"):
                    sums[model] = sample.value
        model = self.name if self.name in series or len(series) != 1 else next(iter(series))
        if model not in series:
            return NllHistogram()
        bounds = sorted(series[model])
        live = NllHistogram.from_cumulative(bounds, [series[model][b] for b in bounds])
        live.total_nll = sums.get(model, 0.0)
        return live


def read_reference(where: str) -> tuple[str, NllHistogram]:
    """(the model name it belongs to, the reference histogram) from a registry version's tag,
    an eval report dir or a drift.json."""
    if where.startswith("models:/"):
        from lmforge.registry.refs import parse_ref
        from lmforge.registry.store import client
        from lmforge.registry.versions import get_version

        version = get_version(client(), parse_ref(where))
        raw = version.tags.get(REFERENCE_TAG)
        if not raw:
            raise RegistryError(
                f"{version.name}/{version.version} has no drift reference",
                hint=f"run lmforge eval {where} --perplexity VALID_TEXT to store one",
            )
        return str(version.name), _parsed(json.loads(raw), where)
    path = Path(where)
    path = path / "drift.json" if path.is_dir() else path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"reference: cannot read a drift reference from {path}: {exc}") from exc
    return "", _parsed(raw, str(path))


def _parsed(raw: Any, where: str) -> NllHistogram:
    try:
        return NllHistogram.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"reference: {where} holds no usable drift reference: {exc}") from exc
