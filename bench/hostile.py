"""Hostile-input benchmark (issue 17): each attack against a real `lmforge serve` on loopback
while a steady stream of normal requests runs. Per attack it prints the server's answer, the
p99 latency of the normal requests sent during the attack against the same p99 without it
(target: at most 2x) and the normal requests lost (target: 0).

    python bench/hostile.py [--model DIR] [--out bench/out/hostile] [--seconds 6]

Without --model it prepares the built-in corpus and trains a tiny model first (a minute or
two). Every loop is bounded (attack sizes, client timeouts, --seconds, --hold); the server
listens on 127.0.0.1 only, and each attack uses its own API key, so one attack's rate budget
never answers for another's. Writes hostile.json beside the model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lmforge.cpuinfo import cpu_flags

NORMAL = {"prompt": "the cat sat on", "max_new_tokens": 8, "ignore_eos": True}
RATE_TOKENS = 3000  # per key per minute: the budget the bypass was measured against
ATTACKS_HOLD = 15.0  # seconds slow and idle connections are held open
Row = dict[str, Any]


def key(name: str) -> str:
    return f"{name}-key-0123456789abcdef"


NORMAL_KEYS = [key(f"normal{i}") for i in range(4)]


def lmforge(*args: str) -> None:
    env = {**os.environ, "LMFORGE_NO_PROGRESS": "1"}
    subprocess.run([sys.executable, "-m", "lmforge", *args], check=True, env=env)


def tiny_model(out: Path) -> Path:
    model = out / "model"
    if not (model / "lmforge.json").is_file():
        data = out / "data"
        lmforge("data", "prepare", "builtin:python-docs", "--output", str(data), "--force",
                "--vocab-size", "512")  # fmt: skip
        lmforge("train", "--data", str(data), "--output", str(model), "--model-size", "tiny",
                "--context-length", "128", "--max-steps", "30", "--eval-steps", "30",
                "--batch-size", "8", "--no-track", "--force")  # fmt: skip
    return model


class Server:
    def __init__(self, model: Path, keys: list[str], log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "lmforge", "serve", str(model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--rate-tokens", str(RATE_TOKENS)]
        env = {**os.environ, "LMFORGE_NO_PROGRESS": "1", "LMFORGE_API_KEYS": ",".join(keys)}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")
        )
        if not self.healthy(300):
            self.process.kill()
            sys.exit(f"lmforge serve never got ready; see {log}")

    def healthy(self, within: float) -> bool:
        """Wait (at most `within` s) until /readyz answers 200."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def client(self, name: str, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key(name)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Stream:
    """Normal clients, each on its own key, one request every `every` s until stopped."""

    server: Server
    every: float = 0.25
    latencies: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in NORMAL_KEYS]

    def run(self, api_key: str) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=30) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    status = str(client.post("/v1/generate", json=NORMAL).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                took = time.perf_counter() - started
                if status == "200":
                    self.latencies.append(took)
                else:
                    self.lost.append(status)
                self.stop.wait(max(0.0, self.every - took))

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def statuses(answers: list[httpx.Response | str]) -> str:
    return ",".join(a if isinstance(a, str) else str(a.status_code) for a in answers)


def send(client: httpx.Client, route: str, **kw: Any) -> httpx.Response | str:
    try:
        return client.post(route, **kw)
    except httpx.HTTPError as exc:
        return type(exc).__name__


# --- the attacks: each returns the server's answer, in words ---------------------------------


def oversize_template(server: Server) -> str:
    body = {
        "text": ["a review"] * 64,
        "labels": ["good", "bad"],
        "template": "{text}" + "x " * 450_000,
    }
    with server.client("template") as client:
        return statuses([send(client, "/v1/classify", json=body)])


def many_prompts(server: Server) -> str:
    # 64 prompts x 171 tokens, three times: about 33k tokens against a 3k/min budget.
    body = {"prompt": ["the"] * 64, "max_tokens": 171, "ignore_eos": True}
    with server.client("prompts") as client:
        return statuses([send(client, "/v1/completions", json=body) for _ in range(3)])


def tokenize_flood(server: Server) -> str:
    with server.client("tokenize") as client:
        body = {"text": "a " * 300_000}
        return statuses([send(client, "/v1/tokenize", json=body) for _ in range(2)])


def lone_surrogate(server: Server) -> str:
    answers = []
    with server.client("surrogate") as client:
        for route, raw in (
            ("/v1/tokenize", b'{"text": "\\udfff"}'),
            ("/v1/completions", b'{"prompt": "a\\udfff", "max_tokens": 2}'),
        ):
            answer = send(client, route, content=raw, headers={"Content-Type": "application/json"})
            has_id = not isinstance(answer, str) and "x-request-id" in answer.headers
            answers.append(f"{statuses([answer])}{'' if has_id else ' (no X-Request-ID)'}")
    return ", ".join(answers)


def many_stops(server: Server) -> str:
    body = {**NORMAL, "max_new_tokens": 64, "stop": [f"zq{i:05d}" for i in range(30_000)]}
    with server.client("stops") as client:
        return statuses([send(client, "/v1/generate", json=body) for _ in range(4)])


def oversize_batches(server: Server) -> str:
    labels = [f"label {i}" for i in range(50)]
    bodies = {
        "classify": ("/v1/classify", {"text": ["a text"] * 64, "labels": labels}),
        "match": ("/v1/match", {"query": "q", "candidates": [f"c {i}" for i in range(256)]}),
        "embeddings": ("/v1/embeddings", {"input": [f"text {i}" for i in range(256)]}),
    }
    answers = []
    with server.client("batches") as client:
        for name, (route, body) in bodies.items():
            # Three tries apart: a 429 "retry shortly" that never clears is the bug.
            tries = []
            for _ in range(3):
                tries.append(send(client, route, json=body))
                time.sleep(0.5)
            answers.append(f"{name} {statuses(tries)}")
    return ", ".join(answers)


def slow_and_idle(server: Server) -> str:
    """200 connections: half send a header byte a second (slowloris), half send nothing."""
    socks = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.setblocking(False)
        socks.append(sock)
    started = time.monotonic()
    header = b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64
    while time.monotonic() - started < ATTACKS_HOLD:
        second = int(time.monotonic() - started)
        for sock in socks[::2]:
            with contextlib.suppress(OSError):  # the server may have closed it: that is fine
                sock.send(header[second : second + 1])
        time.sleep(1)
    still_open = sum(not closed_by_server(sock) for sock in socks)
    for sock in socks:
        sock.close()
    return f"{still_open}/200 still open after {ATTACKS_HOLD:.0f} s"


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ended this connection (an answer such as 408 first, or not)."""
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def huge_content_length(server: Server) -> str:
    """Ten requests announcing 64 MiB and sending none of it: answered at once, or held?"""
    request = (
        b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key('length')}\r\n".encode()
        + b"Content-Length: 67108864\r\n\r\n"
    )
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    started = time.monotonic()
    answers: Counter[str] = Counter()
    for sock in socks:
        sock.sendall(request)
    for sock in socks:  # ten seconds for all of them together
        sock.settimeout(max(0.1, 10 - (time.monotonic() - started)))
        try:
            line = sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
            answers[line.split(" ")[1] if line.count(" ") else "closed"] += 1
        except TimeoutError:
            answers["no answer"] += 1
        finally:
            sock.close()
    counts = ", ".join(f"{answer} x{n}" for answer, n in answers.items())
    return f"{counts} within {time.monotonic() - started:.1f} s"


ATTACKS: dict[str, Callable[[Server], str]] = {
    "oversize template (classify, 900 KB)": oversize_template,
    "N prompts, one charge (3 x 64 prompts)": many_prompts,
    "tokenize flood (2 x 600 KB)": tokenize_flood,
    "lone surrogate (tokenize, completions)": lone_surrogate,
    "30k stop strings (4 requests)": many_stops,
    "oversize batches (64x50, 256, 256)": oversize_batches,
    "slowloris + idle (200 connections)": slow_and_idle,
    "huge Content-Length (64 MiB, no body)": huge_content_length,
}
KEYS = ["template", "prompts", "tokenize", "surrogate", "stops", "batches", "length"]


def phase(server: Server, attack: Callable[[Server], str] | None, seconds: float) -> Row:
    started = time.monotonic()
    with Stream(server) as stream:
        answer = attack(server) if attack else "-"
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    recovered = server.healthy(120)
    return {"answer": answer if recovered else f"{answer}; not ready 120 s later",
            "p99": stream.p99(), "sent": len(stream.latencies) + len(stream.lost),
            "lost": len(stream.lost), "lost_as": sorted(set(stream.lost))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model dir (default: train a tiny one)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/hostile"))
    parser.add_argument("--seconds", type=float, default=6.0, help="least seconds per phase")
    parser.add_argument("--only", nargs="*", default=[], help="attacks whose name has these")
    args = parser.parse_args()
    print(cpu_flags(), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model or tiny_model(args.out)
    server = Server(model, NORMAL_KEYS + [key(k) for k in KEYS], args.out / "serve.log")
    try:
        phase(server, None, 2)  # warm-up
        baseline = phase(server, None, args.seconds)
        rows: dict[str, Row] = {"baseline": baseline}
        for name, attack in ATTACKS.items():
            if args.only and not any(word in name for word in args.only):
                continue
            print(f"... {name}", flush=True)
            rows[name] = phase(server, attack, args.seconds)
            if server.process.poll() is not None:
                rows[name]["answer"] += f"; server exited {server.process.returncode}"
                break
    finally:
        server.stop()
    (args.out / "hostile.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nnormal request: {NORMAL}; baseline p99 {1000 * baseline['p99']:.0f} ms "
          f"over {baseline['sent']} requests\n")  # fmt: skip
    table = [
        (
            name,
            row["answer"],
            f"{1000 * row['p99']:.0f} ms",
            f"{row['p99'] / baseline['p99']:.1f}x",
            f"{row['lost']}/{row['sent']}" + (f" {row['lost_as']}" if row["lost"] else ""),
        )
        for name, row in rows.items()
        if name != "baseline"
    ]
    head = ("attack", "server's answer", "p99 during", "vs baseline", "normal lost")
    widths = [max(len(line[i]) for line in [head, *table]) for i in range(len(head))]
    for line in [head, tuple("-" * w for w in widths), *table]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
