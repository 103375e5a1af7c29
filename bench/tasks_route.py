"""Score a task's dev file through the HTTP route of a real `lmforge serve` of the pipeline's
model (/v1/classify, /v1/match, /v1/summarize), for `make bench-tasks`: the same numbers as
`eval`, but from what a client of the API gets back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from lmforge.metrics import accuracy, binary_f1, rouge, spearman
from lmforge.records import read_records

Metrics = dict[str, float]
BATCH = 64  # /v1/classify takes up to 64 texts a request


@contextmanager
def serving(model: Path, log: Path) -> Iterator[str]:
    """`lmforge serve MODEL` on a free loopback port until the block ends; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LMFORGE_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "lmforge", "serve", str(model), "--port", str(port)]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"lmforge serve exited early; see {log}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"lmforge serve not ready after 300 s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _post(client: httpx.Client, route: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(route, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{route} answered {response.status_code}: {response.text[:300]}")
    answer: dict[str, Any] = response.json()
    return answer


def classify(url: str, dev: Path) -> Metrics:
    """Accuracy of /v1/classify's labels on the dev file (the model's own labels)."""
    records = read_records(dev, ("text", "label"))
    guessed: list[str] = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for start in range(0, len(records), BATCH):
            texts = [r["text"] for r in records[start : start + BATCH]]
            results = _post(client, "/v1/classify", {"text": texts})["results"]
            guessed += [result["label"] for result in results]
    gold = [r["label"] for r in records]
    return {"accuracy": float(np.mean([g == y for g, y in zip(guessed, gold, strict=True)]))}


def match(url: str, dev: Path, target: str) -> Metrics:
    """/v1/match on each pair: F1 of its `match` decision (MRPC) or Spearman of its
    similarity against the score (STS-B)."""
    records = read_records(dev, ("text", "text_b", "label"))
    answers = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for r in records:
            answers.append(_post(client, "/v1/match", {"text_a": r["text"], "text_b": r["text_b"]}))
    similarity = np.array([a["similarity"] for a in answers], float)
    gold = np.array([float(r["label"]) for r in records])
    if target == "score":
        return {"spearman": spearman(similarity, gold)}
    decided = np.array(
        [
            a["match"] if a.get("match") is not None else s >= 0.5
            for a, s in zip(answers, similarity, strict=True)
        ]
    )
    return {"f1": binary_f1(decided, gold == 1), "accuracy": accuracy(decided, gold == 1)}


def summarize(url: str, dev: Path, max_new_tokens: int = 48) -> Metrics:
    """ROUGE-L of /v1/summarize's summaries against the references."""
    rows = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line]
    summaries = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for row in rows:
            body = {"text": row["document"], "max_new_tokens": max_new_tokens}
            summaries.append(_post(client, "/v1/summarize", body)["summary"])
    scores = rouge(summaries, [r["summary"] for r in rows])
    return {"rougeL": scores["rougeL"], "rouge1": scores["rouge1"]}
