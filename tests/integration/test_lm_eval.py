"""lm-evaluation-harness against the real `lmforge serve`: its `local-completions` model type
(tokenized requests, `echo` + `logprobs`, the prompt's log-probabilities) runs a
log-likelihood task and a rolling log-likelihood (perplexity) task defined by local task
YAML files over PTB, offline; the harness's perplexity agrees with `lmforge eval`'s.

Matching windows: the harness scores a document in disjoint windows of `max_length - 2`
tokens, each fed with the one token before it (the first with <|endoftext|>); that is
`lmforge eval --context-length (max_length - 1) --stride (max_length - 2)`. `lmforge eval`
scores the documents of a .txt file as one stream, each followed by <|endoftext|>, so the
harness gets the same stream as one document (the documents joined by <|endoftext|>). The
streams then differ by one token at the start (which only the harness scores, after
<|endoftext|>), and their windows by that one-token shift."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import corpus, run_cli
from tests.integration.servers import API_KEY, Server

pytestmark = pytest.mark.integration

EOT = "<|endoftext|>"
DOCUMENTS = 40  # PTB test lines: about 1,000 tokens


def _task_files(root: Path, lines: list[str]) -> None:
    """A log-likelihood task (each line's second half after its first) and a rolling one
    (the lines as one document), each a local json file and its task YAML."""
    pairs = []
    for line in lines:
        words = line.split()
        half = len(words) // 2
        pairs.append(
            {"context": " ".join(words[:half]), "continuation": " " + " ".join(words[half:])}
        )
    (root / "pairs.jsonl").write_text("\n".join(map(json.dumps, pairs)) + "\n", encoding="utf-8")
    stream = EOT.join(lines) + EOT
    (root / "stream.jsonl").write_text(json.dumps({"text": stream}) + "\n", encoding="utf-8")
    common = "dataset_path: json\ntest_split: test\nmetadata:\n  version: 1.0\n"
    (root / "ptb_halves.yaml").write_text(
        "task: ptb_halves\noutput_type: loglikelihood\n"
        f"dataset_kwargs:\n  data_files:\n    test: {root / 'pairs.jsonl'}\n"
        'doc_to_text: "{{context}}"\ndoc_to_target: "{{continuation}}"\n'
        "metric_list:\n  - metric: perplexity\n  - metric: acc\n" + common,
        encoding="utf-8",
    )
    (root / "ptb_rolling.yaml").write_text(
        "task: ptb_rolling\noutput_type: loglikelihood_rolling\n"
        f"dataset_kwargs:\n  data_files:\n    test: {root / 'stream.jsonl'}\n"
        'doc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: word_perplexity\n" + common,
        encoding="utf-8",
    )


def test_lm_eval_harness_agrees_with_lmforge_eval(teacher: Path, tmp_path: Path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e .[dev])")
    if shutil.which("lm_eval", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the lm_eval command is not installed next to this Python")
    lines = corpus("ptb/ptb.test.txt").read_text(encoding="utf-8").splitlines()[:DOCUMENTS]
    lines = [line.strip() for line in lines if line.strip()]
    _task_files(tmp_path, lines)
    context = json.loads((teacher / "config.json").read_text())["n_positions"]
    server = Server(teacher)
    try:
        model = server.client().get("/v1/models").json()["data"][0]["id"]
        harness = subprocess.run(
            [
                str(Path(sys.executable).parent / "lm_eval"),
                "--model", "local-completions",
                "--model_args",
                f"base_url={server.url}/v1/completions,model={model},tokenizer={teacher},"
                f"tokenizer_backend=huggingface,tokenized_requests=True,max_length={context},"
                "num_concurrent=4,max_retries=1",
                "--tasks", "ptb_halves,ptb_rolling",
                "--include_path", str(tmp_path),
                "--output_path", str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "OPENAI_API_KEY": API_KEY,
                "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"),
                "TOKENIZERS_PARALLELISM": "false",
            },
        )  # fmt: skip
    finally:
        assert server.stop() == 0, server.stderr()
    assert harness.returncode == 0, harness.stderr[-4000:]
    (found,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(found.read_text(encoding="utf-8"))["results"]
    halves, rolling = results["ptb_halves"], results["ptb_rolling"]
    # (The harness's `perplexity` of a log-likelihood task is exp of a whole continuation's
    # negative log-likelihood: large, but finite.)
    assert 0 <= halves["acc,none"] <= 1 and math.isfinite(halves["perplexity,none"])

    text = tmp_path / "ptb.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours = run_cli(
        "eval", str(teacher), "--perplexity", str(text), "--json", "--no-track",
        "--report", str(tmp_path / "report"),
        "--context-length", str(context - 1), "--stride", str(context - 2),
    )  # fmt: skip
    assert ours.returncode == 0, ours.stderr[-2000:]
    metrics = json.loads(ours.stdout)["tasks"]["ptb"]
    # The harness reports per-word perplexity over its document; its log-likelihood is
    # -log(word_perplexity) * words (words: the harness's whitespace split).
    stream = EOT.join(lines) + EOT
    harness_words = len(re.split(r"\s+", stream))
    loglikelihood = -math.log(rolling["word_perplexity,none"]) * harness_words
    harness_tokens = metrics["tokens"] + 1  # it also scores the first token
    harness_perplexity = math.exp(-loglikelihood / harness_tokens)
    print(
        f"lm-eval ptb_halves: acc {halves['acc,none']:.3f} perplexity "
        f"{halves['perplexity,none']:.2f}; ptb_rolling token perplexity "
        f"{harness_perplexity:.3f} vs lmforge eval {metrics['token_perplexity']:.3f}"
    )
    assert harness_perplexity == pytest.approx(metrics["token_perplexity"], rel=0.01)
