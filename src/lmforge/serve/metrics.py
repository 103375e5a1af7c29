"""Prometheus metrics, all named `lmforge_*`, with buckets that reach minutes. What a request
or an engine does carries a `model` label: the served model's name (empty for a request that
reached no model: probes, /metrics, refusals before the body was read)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
TOKENS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lmforge_requests",
            "HTTP requests by route, status and model",
            ["route", "status", "model"],
            registry=r,
        )
        self.duration = Histogram(
            "lmforge_request_duration_seconds",
            "Request latency",
            ["route", "model"],
            buckets=LATENCY,
            registry=r,
        )
        self.queue_time = Histogram(
            "lmforge_queue_time_seconds",
            "Time waiting for a KV slot",
            ["model"],
            buckets=LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "lmforge_time_to_first_token_seconds",
            "Time to first token",
            ["model"],
            buckets=LATENCY,
            registry=r,
        )
        self.tpot = Histogram(
            "lmforge_time_per_output_token_seconds",
            "Time per output token after the first",
            ["model"],
            buckets=PER_TOKEN,
            registry=r,
        )
        self.prompt_tokens = Histogram(
            "lmforge_prompt_tokens",
            "Prompt tokens per request",
            ["model"],
            buckets=TOKENS,
            registry=r,
        )
        self.generated_tokens = Histogram(
            "lmforge_generated_tokens",
            "Generated tokens per request",
            ["model"],
            buckets=TOKENS,
            registry=r,
        )
        self.rejections = Counter(
            "lmforge_rejections", "Requests refused, by reason", ["reason"], registry=r
        )
        self.queue_size = Gauge("lmforge_queue_size", "Requests waiting", ["model"], registry=r)
        self.running = Gauge(
            "lmforge_running_batch_size", "Requests running", ["model"], registry=r
        )
        self.slot_usage = Gauge(
            "lmforge_kv_slot_usage", "Fraction of KV slots in use", ["model"], registry=r
        )
        # Cumulative engine figures, set from its snapshot (rate() of their ratio is the mean
        # step time; a hot swap starts them again from zero, which rate() reads as a reset).
        self.steps = Gauge("lmforge_engine_steps", "Engine steps run", ["model"], registry=r)
        self.step_seconds = Gauge(
            "lmforge_engine_step_seconds", "Seconds spent in engine steps", ["model"], registry=r
        )
        # The prefix cache's cumulative figures, set from the snapshot as the steps are.
        self.prefix_requests = Gauge(
            "lmforge_prefix_cache_requests",
            "Admitted requests that looked up a cached prompt prefix, by result (hit, miss)",
            ["model", "result"],
            registry=r,
        )
        self.prefix_tokens = Gauge(
            "lmforge_prefix_cache_tokens",
            "Prompt tokens of those requests copied from the prefix cache (hit) or computed (miss)",
            ["model", "result"],
            registry=r,
        )
        self.prefix_evictions = Gauge(
            "lmforge_prefix_cache_evictions",
            "Prefix blocks evicted to stay under the budget",
            ["model"],
            registry=r,
        )
        self.prefix_bytes = Gauge(
            "lmforge_prefix_cache_bytes", "Bytes of keys and values held", ["model"], registry=r
        )
        self.in_flight = Gauge("lmforge_http_in_flight", "HTTP requests in progress", registry=r)
        self.ready = Gauge("lmforge_ready", "1 when ready to serve", registry=r)
        self.model = Info(
            "lmforge_model", "A served model: version, sha256, kind", ["model"], registry=r
        )

    def show_model(self, model: str, version: str, sha256: str, kind: str) -> None:
        self.model.labels(model).info({"version": version, "sha256": sha256, "kind": kind})

    def observe_generation(self, model: str, event: Any, seconds: float) -> None:
        """Per-request engine timings from a finished event of `model`."""
        if event.queued_seconds is not None:
            self.queue_time.labels(model).observe(event.queued_seconds)
        if event.first_token_seconds is not None:
            self.ttft.labels(model).observe(event.first_token_seconds)
            if event.output_tokens > 1:
                per_token = (seconds - event.first_token_seconds) / (event.output_tokens - 1)
                self.tpot.labels(model).observe(max(per_token, 0.0))
        self.prompt_tokens.labels(model).observe(event.prompt_tokens)
        self.generated_tokens.labels(model).observe(event.output_tokens)

    def refresh(self, model: str, stats: Any) -> None:
        """The engine gauges of `model` from its snapshot."""
        self.queue_size.labels(model).set(stats.waiting)
        self.running.labels(model).set(stats.running)
        self.slot_usage.labels(model).set(stats.slots_used / max(stats.slots_total, 1))
        self.steps.labels(model).set(stats.steps)
        self.step_seconds.labels(model).set(stats.step_seconds)
        prefix = stats.prefix
        self.prefix_requests.labels(model, "hit").set(prefix.hit_requests)
        self.prefix_requests.labels(model, "miss").set(prefix.miss_requests)
        self.prefix_tokens.labels(model, "hit").set(prefix.hit_tokens)
        self.prefix_tokens.labels(model, "miss").set(prefix.miss_tokens)
        self.prefix_evictions.labels(model).set(prefix.evictions)
        self.prefix_bytes.labels(model).set(prefix.bytes)
