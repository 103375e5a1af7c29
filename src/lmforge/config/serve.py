"""Options of `lmforge serve`, `lmforge bench` and `lmforge monitor`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.config import option
from lmforge.config.train import UNVERIFIED_HELP

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# NAME in a NAME=REF model argument: what an OpenAI `model` field can carry plainly.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def named_ref(given: str) -> tuple[str | None, str]:
    """(NAME, REF) of a model argument `NAME=REF`; (None, REF) of a plain REF (a dir or a
    registry reference, neither of which starts with a name and '=')."""
    name, sep, ref = given.partition("=")
    if sep and MODEL_NAME.match(name):
        return name, ref
    return None, given


@dataclass
class EngineSettings:
    """The serving engine's options: where and how the model runs (the runner's part) and the
    budgets each step is planned under (the scheduler's part). `lmforge serve` takes them as
    flags; `Engine` takes them as they are."""

    unverified: bool = option(False, UNVERIFIED_HELP)
    device: str = option("auto", "cpu, cuda or auto (CUDA when present).")
    dtype: str = option("float32", "Weights dtype.", choices=("float32", "bfloat16", "float16"))
    quantize: str = option("none", "int8: int8 linear layers on CPU.", choices=("none", "int8"))
    head_dtype: str = option(
        "float32",
        "LM head numerics on CPU: bfloat16 runs the largest matrix multiply of a step about 2x "
        "faster on CPUs with avx512_bf16/AMX, at bf16 precision (see the benchmark's "
        "perplexity and greedy-agreement change).",
        choices=("float32", "bfloat16"),
    )
    threads: int = option(0, "Intra-op threads (0 = the CPUs this process may use).", ge=0)
    kv_slots: int = option(32, "Sequences that can run at once (KV cache slots).", ge=1)
    max_batch_size: int = option(
        0, "Sequences running in one step (0 = as many as --kv-slots).", ge=0
    )
    max_batch_tokens: int = option(2048, "Tokens per engine step (prefill chunks + decodes).", ge=1)
    max_queue: int = option(64, "Waiting requests before new ones get 429 overloaded.", ge=0)
    max_seq_len: int = option(
        0, "Context per sequence in tokens (0 = the model's; less shrinks the KV cache).", ge=0
    )
    prefix_cache_mb: int = option(
        256,
        "MiB of recent prompt prefixes' keys and values kept for prompts that start the same "
        "way, e.g. zero-shot labels after one text (0 = off).",
        ge=0,
    )
    chat_template: str = option(
        "",
        "Jinja chat template file for /v1/chat/completions, as transformers reads them "
        "(default: the model's own, else plain-text turns; see docs/api.md).",
    )


@dataclass
class ServeConfig(EngineSettings):
    """Options of `lmforge serve`: the engine's, then the HTTP server's. The engine's options
    apply to each served model: every model gets its own engine and KV cache of --kv-slots
    slots (memory adds up over the models)."""

    model: list[str] = option(
        [],
        "Models to serve: a model dir or registry reference (models:/NAME@ALIAS), or several "
        "as NAME=REF (requests pick one by their `model` field).",
    )
    host: str = option("127.0.0.1", "Address to listen on (other than loopback needs API keys).")
    port: int = option(8000, "Port to listen on.", ge=1, le=65535)
    api_keys_file: str = option(
        "", "File with one API key per line (also: LMFORGE_API_KEYS, comma-separated)."
    )
    admin_keys_file: str = option(
        "", "File with admin keys for /admin/reload (also: LMFORGE_ADMIN_KEYS)."
    )
    metrics_public: bool = option(True, "Serve /metrics without an API key.")
    cors_origins: list[str] = option([], "Origins allowed by CORS (off when empty).")
    max_new_tokens: int = option(512, "Cap on max_new_tokens / max_tokens per request.", ge=1)
    max_body_bytes: int = option(1_000_000, "Largest request body (413 above it).", ge=1)
    request_timeout: float = option(120.0, "Seconds a request may take (504 after).", gt=0)
    drain_seconds: float = option(
        30.0, "On SIGTERM: seconds accepted requests get to finish.", gt=0
    )
    rate_requests: float = option(0.0, "Requests per minute per API key (0 = unlimited).", ge=0)
    rate_tokens: float = option(
        0.0, "Tokens (prompt + max new) per minute per API key (0 = unlimited).", ge=0
    )
    watch_alias: float = option(
        0.0,
        "Poll each model's registry alias every this many seconds and swap in new versions, "
        "one model at a time while the others serve (0 = off).",
        ge=0,
    )
    model_kv_slots: list[str] = option(
        [],
        "KV slots of single models as NAME=SLOTS, comma-separated (e.g. cls=4); the others "
        "get --kv-slots.",
    )
    model_name: str = option(
        "",
        "Name of a single served model in /v1/models (default: the registry name or dir; "
        "with several models, use NAME=REF).",
    )
    drift_sample: float = option(
        0.02,
        "Fraction of prompts scored in the background, after their answer, for the input-drift "
        "histogram lmforge_prompt_nll (0 = off; see lmforge monitor --drift).",
        ge=0,
        le=1,
    )
    access_log: bool = option(True, "One JSON access-log line per request.")
    docs: bool = option(True, "Serve the API browser at /docs (Swagger UI from a local copy).")
    # The transport: what a client that connects directly may hold.
    header_timeout: float = option(
        10.0,
        "Seconds a client has to send a request's line and headers, from connecting or from "
        "the first byte of a later request (then 408 and the connection is closed).",
        gt=0,
    )
    body_timeout: float = option(
        30.0, "Seconds a client has to send a request's body once its headers are in.", gt=0
    )
    keep_alive_timeout: int = option(
        30, "Seconds an idle connection stays open between requests.", ge=1
    )
    max_connections: int = option(
        512,
        "Open connections (or requests in progress) past which new requests get 503 "
        "(0 = no limit).",
        ge=0,
    )
    forwarded_allow_ips: list[str] = option(
        [],
        "Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, e.g. 127.0.0.1 "
        "behind a local nginx (none by default: the client is the connection's peer).",
    )

    def named_refs(self) -> list[tuple[str | None, str]]:
        """(NAME or None, REF) of each model to serve; a single plain REF takes
        --model-name."""
        pairs = [named_ref(given) for given in self.model]
        if len(pairs) == 1 and pairs[0][0] is None and self.model_name:
            return [(self.model_name, pairs[0][1])]
        return pairs

    def kv_slots_of(self) -> dict[str, int]:
        """NAME → KV slots from --model-kv-slots (entries that do not parse are left to
        `problems`)."""
        found = {}
        for given in self.model_kv_slots:
            name, _, slots = given.partition("=")
            if _slots(slots):
                found[name] = int(slots)
        return found

    def problems(self) -> list[str]:
        if not self.model:
            return ["model: MODEL is required"]
        out = [
            f"model: {given!r} names no model after '='"
            for given in self.model
            if not named_ref(given)[1]
        ]
        out += [
            f"model_kv_slots: {given!r} is not NAME=SLOTS with SLOTS a whole number >= 1"
            for given in self.model_kv_slots
            if not _slots(given.partition("=")[2])
        ]
        if self.model_name and len(self.model) > 1:
            out.append("model_name: names a single model; give several as NAME=REF")
        names = [name for name, _ in self.named_refs() if name]
        out += [
            f"model: the name {n!r} is given twice"
            for n in sorted(set(names))
            if names.count(n) > 1
        ]
        return out


def _slots(given: str) -> bool:
    return given.isdigit() and int(given) >= 1


@dataclass
class BenchConfig:
    """Options of `lmforge bench`."""

    url: str = option("", "Base URL of the server (ours or any OpenAI-compatible one).")
    route: str = option("completions", "Which API to drive.", choices=("completions", "generate"))
    model: str = option("", "Model name for OpenAI-compatible servers (default: the first listed).")
    requests: int = option(64, "Requests per concurrency level (after warm-up).", ge=1)
    concurrency: list[int] = option([8], "Concurrency levels to sweep (e.g. 1,8,32).")
    rate: float = option(
        0.0, "Poisson arrival rate in requests/s instead of fixed concurrency.", ge=0
    )
    prompt_tokens: int = option(32, "Length of random prompts, in tokens (approximately).", ge=1)
    prompts_file: str = option("", "Prompts to use instead, one per line.")
    max_new_tokens: int = option(64, "Tokens to generate per request.", ge=1)
    ignore_eos: bool = option(True, "Ask the server to ignore end-of-text (exact lengths).")
    warmup: int = option(4, "Warm-up requests before measuring.")
    api_key: str = option("", "API key (also: LMFORGE_API_KEY).")
    timeout: float = option(600.0, "Seconds per request before it counts as an error.")
    output: str = option("", "Directory for bench.json and the plots.")
    seed: int = option(0, "Seed for prompts and arrivals.")

    def problems(self) -> list[str]:
        out = []
        if not self.url.startswith(("http://", "https://")):
            out.append(f"url: {self.url!r} is not an http(s) URL")
        # A list: its bound is not a single number that `option` could declare.
        if not self.concurrency or min(self.concurrency) < 1:
            out.append(f"concurrency: {self.concurrency} needs levels of at least 1")
        return out


@dataclass
class MonitorConfig:
    """Options of `lmforge monitor`."""

    url: str = option("", "Base URL of the server to watch.")
    interval: float = option(10.0, "Seconds between polls.", gt=0)
    timeout: float = option(5.0, "Seconds before a poll counts as failed.", gt=0)
    failures: int = option(3, "Consecutive failures that raise the alarm (exit code 2).", ge=1)
    probe_slo: float = option(
        0.0,
        "Also run a tiny generate and fail it when slower than this many seconds (0 = off).",
        ge=0,
    )
    api_key: str = option("", "API key for the latency probe (also: LMFORGE_API_KEY).")
    count: int = option(0, "Stop after this many polls (0 = run until the alarm or Ctrl-C).", ge=0)
    drift: bool = option(
        False,
        "Also compare the server's prompt NLL histogram (lmforge_prompt_nll on /metrics) with "
        "the eval reference: alarm (exit code 1) when their population stability index is "
        "above --drift-threshold.",
    )
    reference: str = option(
        "",
        "The drift reference: a registry version (models:/NAME@ALIAS, models:/NAME/VERSION) "
        "whose eval stored one, or an eval report dir or its drift.json (default: the registry "
        "version the server says it serves).",
    )
    drift_threshold: float = option(
        0.25,
        "PSI above which the input distribution has moved (0.1-0.25 is the usual 'moderate "
        "shift' band, above 0.25 'significant').",
        gt=0,
    )
    drift_min_tokens: int = option(
        200, "Scored prompt tokens the server must have before drift is judged.", ge=1
    )
    drift_window: int = option(
        0,
        "Judge only what was scored during the last this many polls (0 = all since the "
        "server started).",
        ge=0,
    )

    def problems(self) -> list[str]:
        if not self.url.startswith(("http://", "https://")):
            return [f"url: {self.url!r} is not an http(s) URL"]
        if self.reference and not self.drift:
            return ["reference: --reference is used only with --drift"]
        return []
