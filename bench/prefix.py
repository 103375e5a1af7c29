"""Prefix-cache benchmark (issue 18): a real `lmforge serve` of a distilgpt2-shaped model
(random weights, the full-size tokenizer of bench/engine.py), once with the prefix cache off
and once on, in one run on this machine.

  (a) zero-shot /v1/classify with 10 labels on a 100-token text, one call at a time, a new
      text each call: calls per second, on / off (goal >= 5x);
  (b) time to first token (/v1/completions, max_tokens 1) of a prompt whose first 500
      tokens were seen before (warm) against one whose were not (cold), on the same server
      (goal warm <= 25% of cold).

    python bench/prefix.py [--out DIR] [--calls N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from engine import VOCAB, build_model

from lmforge.cpuinfo import cpu_flags

LABELS = ["sports", "politics", "business", "science", "health"]
LABELS += ["travel", "music", "film", "food", "weather"]
TEXT_TOKENS, PREFIX_TOKENS, SUFFIX_TOKENS = 100, 500, 20


@contextmanager
def serving(model: Path, log: Path, prefix_cache_mb: int) -> Iterator[httpx.Client]:
    """`lmforge serve MODEL --prefix-cache-mb N` on a free loopback port until the block
    ends; yields a client of it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LMFORGE_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "lmforge", "serve", str(model), "--port", str(port)]
    command += ["--prefix-cache-mb", str(prefix_cache_mb), "--drift-sample", "0"]
    command += ["--unverified"]  # the random model this script built has no lmforge.json
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
    try:
        deadline = time.monotonic() + 300
        while not ready(client):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lmforge serve did not become ready; see {log}")
            time.sleep(0.5)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=60)


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def random_text(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens of the two-byte-merge tokenizer: words of lowercase letters
    (each pair of letters one token, each space-led word start one)."""
    words = []
    while sum(len(w) + 1 for w in words) < 2 * tokens - 8:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)))
    return " ".join(words)


def classify_rate(client: httpx.Client, rng: random.Random, calls: int) -> dict[str, float]:
    """Sequential /v1/classify calls, each on a new text: calls per second after 2 warm-up
    calls."""
    for _ in range(2):
        post(client, "/v1/classify", {"text": random_text(rng, TEXT_TOKENS), "labels": LABELS})
    started = time.perf_counter()
    for _ in range(calls):
        post(client, "/v1/classify", {"text": random_text(rng, TEXT_TOKENS), "labels": LABELS})
    return {"calls_per_s": calls / (time.perf_counter() - started)}


def first_token_seconds(client: httpx.Client, prompt: list[int]) -> float:
    body = {"prompt": prompt, "max_tokens": 1, "temperature": 0}
    started = time.perf_counter()
    post(client, "/v1/completions", body)
    return time.perf_counter() - started


def ttft(client: httpx.Client, rng: random.Random, repeat: int) -> dict[str, float]:
    """Median seconds to the first token of a 520-token prompt: cold (a 500-token prefix
    never seen) and warm (the same 500-token prefix as a prompt served before, another
    suffix each time)."""

    def ids(count: int) -> list[int]:
        return [rng.randrange(VOCAB - 1) for _ in range(count)]

    first_token_seconds(client, ids(PREFIX_TOKENS + SUFFIX_TOKENS))  # warm-up
    cold = [first_token_seconds(client, ids(PREFIX_TOKENS + SUFFIX_TOKENS)) for _ in range(repeat)]
    shared = ids(PREFIX_TOKENS)
    first_token_seconds(client, shared + ids(SUFFIX_TOKENS))
    warm = [first_token_seconds(client, shared + ids(SUFFIX_TOKENS)) for _ in range(repeat)]
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm)}


def post(client: httpx.Client, route: str, body: dict[str, object]) -> dict[str, object]:
    response = client.post(route, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{route}: {response.status_code} {response.text[:300]}")
    answer: dict[str, object] = response.json()
    return answer


def prefix_metrics(client: httpx.Client) -> dict[str, float]:
    """The server's lmforge_prefix_cache_* samples, by sample name and labels."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("lmforge_prefix_cache_"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/prefix"))
    parser.add_argument("--calls", type=int, default=10, help="classify calls per setting")
    parser.add_argument("--repeat", type=int, default=5, help="prompts per TTFT median")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(cpu_flags())
    print("(the machine may be shared: compare the ratios, measured in this one run)")
    model = build_model(args.out / "model")
    results: dict[str, dict[str, float]] = {}
    for name, mb in (("off", 0), ("on", 256)):
        rng = random.Random(0)
        with serving(model, args.out / f"serve-{name}.log", mb) as client:
            results[name] = classify_rate(client, rng, args.calls) | ttft(client, rng, args.repeat)
            results[name] |= prefix_metrics(client)
    off, on = results["off"], results["on"]
    speedup = on["calls_per_s"] / off["calls_per_s"]
    warm_share = on["warm_s"] / on["cold_s"]
    print(f"{'prefix cache':<14}{'classify calls/s':>18}{'TTFT cold ms':>14}{'TTFT warm ms':>14}")
    for name, row in results.items():
        print(
            f"{name:<14}{row['calls_per_s']:>18.2f}"
            f"{1000 * row['cold_s']:>14.1f}{1000 * row['warm_s']:>14.1f}"
        )
    print(f"classify, 10 labels, {TEXT_TOKENS}-token text: {speedup:.1f}x with the cache (goal 5x)")
    print(
        f"TTFT with a warm {PREFIX_TOKENS}-token prefix: {100 * warm_share:.0f}% of cold "
        "(goal <= 25%)"
    )
    results["summary"] = {"classify_speedup": speedup, "ttft_warm_over_cold": warm_share}
    (args.out / "prefix.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
