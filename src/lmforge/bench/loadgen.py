"""`lmforge bench`: an async load generator for our routes and any OpenAI-compatible server.
Streams every request, so time to first token and inter-token latency are measured as the
client sees them."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.config.serve import BenchConfig
from lmforge.errors import ConfigError, DataError

if TYPE_CHECKING:
    import httpx
    from rich.table import Table

# Common short English words: random prompts of roughly one token per word.
COMMON_WORDS = (
    "the of and to in is was for on as with by he at from his an were are which this be "
    "or had not but have one they you all new more their has there been its first who "
    "after time two can would other into also year some made over only most city world "
    "state such where"
)
WORDS = COMMON_WORDS.split()


@dataclass
class Sample:
    ok: bool
    status: int | None = None
    ttft: float | None = None
    latency: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int | None = None
    gaps: list[float] = field(default_factory=list)
    error: str = ""


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def summarize(label: str, samples: list[Sample], seconds: float) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    errors: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            key = str(s.status or "connection")
            errors[key] = errors.get(key, 0) + 1
    tpot = [
        (s.latency - s.ttft) / (s.output_tokens - 1)
        for s in good
        if s.ttft is not None and s.output_tokens > 1
    ]
    tokens = sum(s.output_tokens for s in good)
    prompt_counts = [s.prompt_tokens for s in good if s.prompt_tokens is not None]
    return {
        "level": label,
        "requests": len(samples),
        "succeeded": len(good),
        "errors": errors,
        "seconds": seconds,
        "requests_per_s": len(good) / seconds,
        "output_tokens_per_s": tokens / seconds,
        "prompt_tokens_mean": sum(prompt_counts) / len(prompt_counts) if prompt_counts else None,
        "ttft_s": percentiles([s.ttft for s in good if s.ttft is not None]),
        "tpot_s": percentiles(tpot),
        "itl_s": percentiles([g for s in good for g in s.gaps]),
        "latency_s": percentiles([s.latency for s in good]),
    }


class Target:
    """How to call one kind of route and read its stream."""

    def __init__(self, config: BenchConfig, model: str) -> None:
        self.config = config
        self.model = model
        self.path = "/v1/completions" if config.route == "completions" else "/v1/generate"

    def body(self, prompt: str) -> dict[str, Any]:
        c = self.config
        if c.route == "generate":
            return {
                "prompt": prompt,
                "max_new_tokens": c.max_new_tokens,
                "temperature": 0,
                "ignore_eos": c.ignore_eos,
                "stream": True,
            }
        return {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": c.max_new_tokens,
            "min_tokens": c.max_new_tokens if c.ignore_eos else 0,
            "temperature": 0,
            "ignore_eos": c.ignore_eos,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    @staticmethod
    def read(event: dict[str, Any]) -> tuple[str, dict[str, int]]:
        """(new text, the usage counts if this event reports them)."""
        if "choices" in event:
            text = "".join(c.get("text", "") for c in event["choices"])
        else:
            text = event.get("text", "")
        return text, event.get("usage") or {}


async def one_request(client: httpx.AsyncClient, target: Target, prompt: str) -> Sample:
    started = time.perf_counter()
    sample = Sample(ok=False)
    last: float | None = None
    chunks = 0
    try:
        async with client.stream("POST", target.path, json=target.body(prompt)) as response:
            sample.status = response.status_code
            if response.status_code != 200:
                sample.error = (await response.aread()).decode(errors="replace")[:200]
                return sample
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                text, usage = target.read(json.loads(data))
                now = time.perf_counter()
                if usage:
                    sample.output_tokens = usage.get("completion_tokens", 0)
                    sample.prompt_tokens = usage.get("prompt_tokens")
                if text:
                    chunks += 1
                    if sample.ttft is None:
                        sample.ttft = now - started
                    elif last is not None:
                        sample.gaps.append(now - last)
                    last = now
        sample.output_tokens = sample.output_tokens or chunks
        sample.ok = True
    except Exception as exc:  # every client-side failure is a data point, not a crash
        sample.error = f"{type(exc).__name__}: {exc}"
    finally:
        sample.latency = time.perf_counter() - started
    return sample


def make_prompts(config: BenchConfig, count: int) -> list[str]:
    if config.prompts_file:
        path = Path(config.prompts_file)
        if not path.is_file():
            raise ConfigError(f"prompts_file: {path} does not exist")
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        if not lines:
            raise DataError(f"{path} has no prompts")
        return [lines[i % len(lines)] for i in range(count)]
    rng = random.Random(config.seed)
    return [" ".join(rng.choices(WORDS, k=config.prompt_tokens)) for _ in range(count)]


async def run_level(
    client: httpx.AsyncClient, target: Target, config: BenchConfig, concurrency: int
) -> dict[str, Any]:
    prompts = make_prompts(config, config.requests)
    started = time.perf_counter()
    if config.rate:
        rng = random.Random(config.seed)
        tasks: list[asyncio.Future[Sample]] = []
        for prompt in prompts:
            tasks.append(asyncio.ensure_future(one_request(client, target, prompt)))
            await asyncio.sleep(rng.expovariate(config.rate))
        samples = await asyncio.gather(*tasks)
        label = f"rate {config.rate:g}/s"
    else:
        gate = asyncio.Semaphore(concurrency)

        async def limited(prompt: str) -> Sample:
            async with gate:
                return await one_request(client, target, prompt)

        samples = await asyncio.gather(*(limited(p) for p in prompts))
        label = f"concurrency {concurrency}"
    return summarize(label, list(samples), time.perf_counter() - started)


async def bench(config: BenchConfig) -> dict[str, Any]:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    key = config.api_key or os.environ.get("LMFORGE_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=max(config.concurrency) + 8)
    async with httpx.AsyncClient(
        base_url=config.url.rstrip("/"), headers=headers, timeout=config.timeout, limits=limits
    ) as client:
        model = config.model
        if not model and config.route == "completions":
            listed = await client.get("/v1/models")
            if listed.status_code != 200:
                raise ConfigError(f"url: GET /v1/models answered {listed.status_code}")
            model = listed.json()["data"][0]["id"]
        target = Target(config, model)
        warm = await asyncio.gather(
            *(one_request(client, target, p) for p in make_prompts(config, config.warmup))
        )
        if config.warmup and not any(s.ok for s in warm):
            failed = warm[0]
            raise ConfigError(
                f"url: warm-up requests failed ({failed.status}: {failed.error or 'no answer'})"
            )
        levels = [config.concurrency[0]] if config.rate else config.concurrency
        results = [await run_level(client, target, config, c) for c in levels]
    return {"url": config.url, "route": config.route, "model": model, "levels": results}


def run_bench(config: BenchConfig) -> dict[str, Any]:
    results = asyncio.run(bench(config))
    results["config"] = asdict(config)
    results["config"]["api_key"] = "***" if results["config"]["api_key"] else ""
    if config.output:
        out = Path(config.output)
        out.mkdir(parents=True, exist_ok=True)
        from lmforge.fsutil import write_json_atomic

        write_json_atomic(out / "bench.json", results)
        plot(results, out / "bench.png")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = results["levels"]
    names = [lv["level"].split()[-1] for lv in levels]
    x = list(range(len(levels)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(x, [lv["output_tokens_per_s"] for lv in levels])
    left.set(title="output tokens/s", xlabel="concurrency")
    for q in ("p50", "p99"):
        right.plot(x, [1000 * (lv["ttft_s"][q] or 0) for lv in levels], marker="o", label=q)
    right.set(title="time to first token (ms)", xlabel="concurrency")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(x, names)
    fig.suptitle(f"lmforge bench {results['url']} ({results['route']})")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def table(results: dict[str, Any]) -> Table:
    from rich.table import Table

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{1000 * value:.0f}"

    out = Table(
        title=f"lmforge bench {results['url']} ({results['route']}); times in ms, p50/p99",
        caption="TTFT: time to first token; TPOT: per output token; ITL: between chunks",
    )
    for name in ("level", "ok", "req/s", "tok/s", "TTFT", "TPOT p50", "ITL", "latency", "errors"):
        out.add_column(name, overflow="fold")
    for lv in results["levels"]:
        out.add_row(
            lv["level"].replace("concurrency ", "c="),
            f"{lv['succeeded']}/{lv['requests']}",
            f"{lv['requests_per_s']:.2f}",
            f"{lv['output_tokens_per_s']:.1f}",
            f"{ms(lv['ttft_s']['p50'])}/{ms(lv['ttft_s']['p99'])}",
            ms(lv["tpot_s"]["p50"]),
            f"{ms(lv['itl_s']['p50'])}/{ms(lv['itl_s']['p99'])}",
            f"{ms(lv['latency_s']['p50'])}/{ms(lv['latency_s']['p99'])}",
            ", ".join(f"{k}: {v}" for k, v in lv["errors"].items()) or "-",
        )
    return out
