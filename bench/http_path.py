"""Where the time goes between the engine and the socket (issue 18, "the HTTP path").

One run, on the distilgpt2-shaped model of bench/engine.py:
  1. the bare engine (in this process, asyncio consumers as bench/engine.py's `ours`);
  2. `lmforge serve` (a child process, probed) driven by `lmforge bench` (another child),
     the same prompts, 64 new tokens each, greedy, ignore_eos, at each concurrency.
Printed per level: output tok/s and TTFT p50/p99 of both and their ratios; the server's
engine step time against the bare engine's (the GIL the HTTP side takes shows up as slower
steps); event-loop lag (how late a 10 ms timer fires); thread-safe wake-ups of the loop per
engine step; the CPU seconds of the server's loop thread, its other threads and the client.
Also the cost of framing one streamed token (JSON + SSE) and the CPU flags.

    python bench/http_path.py [--out DIR] [--concurrency 1,8,32] [--requests 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import timeit
import urllib.request
from pathlib import Path
from typing import Any

from engine import NEW, build_model, percentile

from lmforge.bench.loadgen import make_prompts
from lmforge.config.serve import BenchConfig, EngineSettings, ServeConfig
from lmforge.cpuinfo import cpu_flags
from lmforge.serve.engine import Engine
from lmforge.serve.request import Kind, SamplingParams

HERE = Path(__file__).resolve().parent
PORT = 8123
PROMPT_WORDS = 13  # about 32 tokens with this tokenizer, as bench/serve.sh
LAG_PERIOD = 0.01


# the probed server (a child process) --------------------------------------------------------


def probe_serve(model: str, port: int, record: Path) -> None:
    """`lmforge serve` with probes: every thread-safe wake-up of the event loop is counted, a
    task records how late a 10 ms sleep returns, and SIGUSR1 appends the counters (and the
    lags since the last dump) to `record` as one JSON line."""
    import uvicorn

    from lmforge.serve import server

    counters: dict[str, Any] = {"wakeups": 0, "lags": []}
    states: list[Any] = []
    build_state = server.build_state

    def capture(config: ServeConfig) -> Any:
        states.append(build_state(config))
        return states[-1]

    server.build_state = capture  # type: ignore[assignment]
    serve = uvicorn.Server.serve

    async def probed(self: uvicorn.Server, sockets: Any = None) -> None:
        loop = asyncio.get_running_loop()
        wake = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            counters["wakeups"] += 1
            return wake(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

        async def sample_lag() -> None:
            while True:
                due = time.perf_counter() + LAG_PERIOD
                await asyncio.sleep(LAG_PERIOD)
                counters["lags"].append(time.perf_counter() - due)

        sampler = asyncio.ensure_future(sample_lag())
        try:
            await serve(self, sockets)
        finally:
            sampler.cancel()

    uvicorn.Server.serve = probed  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        stats = next(iter(states[0].models)).engine.stats if states else None
        line = {
            "wakeups": counters["wakeups"],
            "lags": counters["lags"],
            "steps": stats.steps if stats else 0,
            "step_seconds": stats.step_seconds if stats else 0.0,
        }
        counters["lags"] = []
        with record.open("a") as out:
            out.write(json.dumps(line) + "\n")

    signal.signal(signal.SIGUSR1, dump)
    server.serve(ServeConfig(model=[model], port=port, kv_slots=32, max_queue=256, unverified=True))


# the driver ----------------------------------------------------------------------------------


def engine_alone(model_dir: Path, texts: list[str], levels: list[int]) -> dict[int, dict]:
    """The bare engine on the same prompts at each level, its consumers asyncio tasks as the
    server's; after a warm-up as the server's (bench/engine.py's, 8 requests). TTFT is timed
    to the first text, as over HTTP, where a token without text sends nothing."""
    params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)
    results = {}
    first_token: list[float] = []  # bench/engine.py's TTFT: the first token, text or not
    with Engine(model_dir, EngineSettings(kv_slots=32, max_queue=256, unverified=True)) as engine:
        prompts = [engine.encode(t) for t in texts]

        async def level(prompts: list[list[int]], concurrency: int) -> tuple[int, list[float]]:
            gate = asyncio.Semaphore(concurrency)
            ttft: list[float] = []
            first_token.clear()

            async def one(ids: list[int]) -> int:
                async with gate:
                    start, count, seen = time.perf_counter(), 0, False
                    async for event in engine.events(engine.request(ids, Kind.GENERATE, params)):
                        if not count and event.token_ids:
                            first_token.append(time.perf_counter() - start)
                        # The first text, as `lmforge bench` times it: a random model's
                        # tokens are often part of a UTF-8 character, held back until whole.
                        if event.text and not seen:
                            ttft.append(time.perf_counter() - start)
                            seen = True
                        count += len(event.token_ids)
                    return count

            counts = await asyncio.gather(*(one(p) for p in prompts))
            return sum(counts), ttft

        asyncio.run(level(prompts[:8], 8))
        for c in levels:
            steps, busy = engine.stats.steps, engine.stats.step_seconds
            start = time.perf_counter()
            tokens, ttft = asyncio.run(level(prompts, c))
            seconds = time.perf_counter() - start
            results[c] = {
                "tok_s": tokens / seconds,
                "ttft_p50": percentile(ttft, 50),
                "ttft_p99": percentile(ttft, 99),
                "first_token_p99": percentile(first_token, 99),
                "step_ms": 1000 * (engine.stats.step_seconds - busy) / (engine.stats.steps - steps),
            }
    return results


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the main thread's, the other threads') CPU seconds of process `pid`. The server's
    main thread runs the event loop; the others are the engine, its kernels' and the
    tokenizer's."""
    tick = os.sysconf("SC_CLK_TCK")
    main = rest = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == pid:
            main += used
        else:
            rest += used
    return main, rest


def snapshot(pid: int, record: Path) -> dict[str, Any]:
    lines = len(record.read_text().splitlines()) if record.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not record.exists() or len(record.read_text().splitlines()) == lines:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the probed server wrote no counters to {record}")
        time.sleep(0.01)
    last: dict[str, Any] = json.loads(record.read_text().splitlines()[-1])
    last["cpu"] = cpu_seconds(pid)
    return last


def through_http(pid: int, record: Path, out: Path, args: argparse.Namespace, c: int) -> dict:
    """One `lmforge bench` level against the probed server, with what the probes saw."""
    lmforge = Path(sys.executable).parent / "lmforge"
    command = [str(lmforge), "bench", f"http://127.0.0.1:{PORT}", "--concurrency", str(c)]
    command += ["--requests", str(args.requests), "--prompt-tokens", str(PROMPT_WORDS)]
    command += ["--max-new-tokens", str(NEW), "--warmup", "4", "--output", str(out / f"c{c}")]
    before = snapshot(pid, record)
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"lmforge bench exited with {status}")
    after = snapshot(pid, record)
    level = json.loads((out / f"c{c}" / "bench.json").read_text())["levels"][0]
    steps = after["steps"] - before["steps"]
    lags = sorted(after["lags"])
    return {
        "tok_s": level["output_tokens_per_s"],
        "ttft_p50": level["ttft_s"]["p50"],
        "ttft_p99": level["ttft_s"]["p99"],
        "step_ms": 1000 * (after["step_seconds"] - before["step_seconds"]) / max(steps, 1),
        "lag_p50_ms": 1000 * percentile(lags, 50) if lags else 0.0,
        "lag_p99_ms": 1000 * percentile(lags, 99) if lags else 0.0,
        "wakeups_per_step": (after["wakeups"] - before["wakeups"]) / max(steps, 1),
        "loop_cpu_s": after["cpu"][0] - before["cpu"][0],
        "other_cpu_s": after["cpu"][1] - before["cpu"][1],
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": level["seconds"],
    }


def framing_us() -> dict[str, float]:
    """Microseconds to frame one streamed token as each route does (JSON and SSE)."""
    from lmforge.serve.http.completion import Answer
    from lmforge.serve.http.sse import sse

    answer = Answer("distilgpt2-random")
    runs = 20000
    completion = timeit.timeit(lambda: answer.chunk(0, " the", None), number=runs)
    native = timeit.timeit(lambda: sse({"id": "a" * 32, "text": " the"}), number=runs)
    return {"completions": 1e6 * completion / runs, "generate": 1e6 * native / runs}


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never got ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out" / "http_path")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--probe-serve", help=argparse.SUPPRESS)  # the child's mode
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_serve:
        return probe_serve(args.probe_serve, PORT, args.record)
    levels = [int(c) for c in args.concurrency.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(HERE / "out" / "engine" / "distilgpt2-random")
    texts = make_prompts(BenchConfig(prompt_tokens=PROMPT_WORDS), args.requests)
    print(cpu_flags(), flush=True)
    print("framing one token, µs:", framing_us(), flush=True)
    bare = engine_alone(model_dir, texts, levels)
    record = args.out / "probe.jsonl"
    record.unlink(missing_ok=True)
    env = {**os.environ, "LMFORGE_NO_PROGRESS": "1"}
    probe = [sys.executable, __file__, "--probe-serve", str(model_dir), "--record", str(record)]
    with (args.out / "serve.log").open("w") as log:
        server = subprocess.Popen(probe, stderr=log, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{PORT}/readyz", server)
        http = {c: through_http(server.pid, record, args.out, args, c) for c in levels}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    print(
        f"{'c':>3} {'engine tok/s':>12} {'http tok/s':>10} {'ratio':>6}  TTFT p50 ms (eng/http)"
        f"  TTFT p99 ms (eng/http) {'p99 ratio':>9}"
    )
    for c in levels:
        e, h = bare[c], http[c]
        print(
            f"{c:>3} {e['tok_s']:>12.1f} {h['tok_s']:>10.1f} {h['tok_s'] / e['tok_s']:>6.2f}"
            f"  {1000 * e['ttft_p50']:>8.0f} / {1000 * h['ttft_p50']:<8.0f}"
            f"  {1000 * e['ttft_p99']:>8.0f} / {1000 * h['ttft_p99']:<8.0f}"
            f" {h['ttft_p99'] / e['ttft_p99']:>9.2f}"
            f"   (engine first-token p99 {1000 * e['first_token_p99']:.0f} ms)"
        )
    print(
        f"\n{'c':>3} {'step ms eng/http':>17} {'lag p50/p99 ms':>15} {'wakeups/step':>12}"
        f"  CPU s: loop / engine+kernels / client  (wall s)"
    )
    for c in levels:
        e, h = bare[c], http[c]
        print(
            f"{c:>3} {e['step_ms']:>8.1f} / {h['step_ms']:<6.1f} "
            f"{h['lag_p50_ms']:>6.1f} / {h['lag_p99_ms']:<6.1f} {h['wakeups_per_step']:>12.2f}"
            f"  {h['loop_cpu_s']:.1f} / {h['other_cpu_s']:.1f} / {h['client_cpu_s']:.1f}"
            f"  ({h['wall_s']:.1f})"
        )
    (args.out / "http_path.json").write_text(json.dumps({"engine": bare, "http": http}, indent=2))


if __name__ == "__main__":
    main()
