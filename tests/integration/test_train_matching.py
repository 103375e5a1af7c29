"""Pair models from the real CLI to the real server and `eval`: `train --task matching` on a
0/1 label (MRPC's layout) and on a graded score (STS-B's: tab-separated, no header), served on
/v1/match (a pair, and a query ranked against candidates) with the head's outputs equal to
transformers' over `prompts.pair_text`, and scored by `eval` through the same head."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.metrics import binary_f1, spearman
from lmforge.prompts import pair_text
from tests.conftest import run_cli
from tests.integration.servers import Server

pytestmark = pytest.mark.integration
# Words the tiny tokenizer knows (tests/conftest.py), accents included.
WORDS = ["the", "cat", "sat", "on", "mat", ".", "hello", "world", ",", "café", "naïve"]
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))


def pairs(count: int, seed: int) -> list[tuple[str, str, float]]:
    """(text_a, text_b, similarity 0-5): every other pair a light edit of the first text,
    with the file's stray spaces (SST-2's rows end in one)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        a = sentence(rng)
        b = a + " " + rng.choice(WORDS) if i % 2 else sentence(rng)
        out.append((a + " ", "  " + b, 4.0 + rng.random() if i % 2 else rng.random() * 2))
    return out


def train(*args: str) -> None:
    result = run_cli(
        "train", "--task", "matching", *args,
        "--max-steps", "4", "--eval-steps", "2", "--batch-size", "8", "--no-track",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matching")
    for name, seed in (("train", 1), ("dev", 2)):
        rows = [
            f"{int(s > 3)}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, s) in enumerate(pairs(40, seed))
        ]
        (root / f"{name}.tsv").write_text("\n".join([MRPC_HEADER, *rows]) + "\n", "utf-8")
        rows = [
            f"g\tsrc\t2012\t{i:04d}\t{s:.3f}\t{a}\t{b}"
            for i, (a, b, s) in enumerate(pairs(40, seed))
        ]
        (root / f"sts-{name}.csv").write_text("\n".join(rows) + "\n", "utf-8")
    return root


@pytest.fixture(scope="module")
def label_model(tiny_model: Path, work: Path) -> Path:
    train(
        "--init", str(tiny_model), "--data", str(work / "train.tsv"),
        "--valid-data", str(work / "dev.tsv"), "--text-column", "#1 String",
        "--text-b-column", "#2 String", "--label-column", "Quality",
        "--output", str(work / "mrpc"),
    )  # fmt: skip
    return work / "mrpc"


@pytest.fixture(scope="module")
def score_model(tiny_model: Path, work: Path) -> Path:
    train(
        "--init", str(tiny_model), "--data", str(work / "sts-train.csv"),
        "--valid-data", str(work / "sts-dev.csv"), "--data-format", "tsv", "--no-header",
        "--text-column", "5", "--text-b-column", "6", "--label-column", "4",
        "--output", str(work / "stsb"),
    )  # fmt: skip
    return work / "stsb"


def reference(model_dir: Path, texts: list[tuple[str, str]]) -> np.ndarray:
    """transformers' head outputs [pairs, outputs] over each pair's text, tokenized by the
    model's own tokenizer.json."""
    from tokenizers import Tokenizer
    from transformers import GPT2ForSequenceClassification

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = GPT2ForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        rows = [
            model(torch.tensor([tokenizer.encode(pair_text(a, b)).ids])).logits[0].numpy()
            for a, b in texts
        ]
    return np.array(rows)


def p_match(model_dir: Path, texts: list[tuple[str, str]]) -> np.ndarray:
    probabilities: np.ndarray = torch.tensor(reference(model_dir, texts)).softmax(-1).numpy()
    return probabilities[:, 1]


def read_card(model_dir: Path) -> dict:
    return json.loads((model_dir / "lmforge.json").read_text(encoding="utf-8"))


def test_cards_name_the_task_the_pair_format_and_the_metrics(
    label_model: Path, score_model: Path
) -> None:
    label, score = read_card(label_model), read_card(score_model)
    assert label["task"] == score["task"] == "matching"
    assert label["pair"] == {"separator": "\n", "target": "label"}
    assert score["pair"] == {"separator": "\n", "target": "score"}
    assert label["labels"] == ["0", "1"] and score["labels"] == ["score"]
    assert {"valid_accuracy", "valid_f1"} <= set(label["metrics"])
    assert {"valid_pearson", "valid_spearman"} <= set(score["metrics"])
    config = json.loads((score_model / "config.json").read_text(encoding="utf-8"))
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}


def test_a_label_matcher_answers_pairs_and_rankings(label_model: Path) -> None:
    server = Server(label_model)
    try:
        client = server.client()
        a, b = "  the cat   sat on the mat ", "the cat sat on the mat . hello"
        answer = client.post("/v1/match", json={"text_a": a, "text_b": b, "threshold": 0.5})
        assert answer.status_code == 200, answer.text
        (expected,) = p_match(label_model, [(a, b)])
        assert answer.json()["similarity"] == pytest.approx(float(expected), abs=1e-4)
        assert answer.json()["match"] is bool(expected >= 0.5)

        query, candidates = "hello world , café", ["hello world , café !", "the mat", "naïve"]
        ranked = client.post("/v1/match", json={"query": query, "candidates": candidates})
        assert ranked.status_code == 200, ranked.text
        ranking = ranked.json()["ranking"]
        expected_scores = p_match(label_model, [(query, c) for c in candidates])
        assert [r["index"] for r in ranking] == list(np.argsort(-expected_scores))
        for row in ranking:
            assert row["text"] == candidates[row["index"]]
            assert row["similarity"] == pytest.approx(expected_scores[row["index"]], abs=1e-4)

        wrong = client.post("/v1/classify", json={"text": "the cat"})
        message = wrong.json()["error"]["message"]
        assert wrong.status_code == 422 and "is a matcher: it can match" in message, message
    finally:
        assert server.stop() == 0, server.stderr()


def test_a_score_matcher_answers_its_raw_regression_value(score_model: Path) -> None:
    server = Server(score_model)
    try:
        a, b = "the cat sat", "the cat sat on the mat"
        body = {"text_a": a, "text_b": b, "threshold": 2.5}  # a 0-5 score's threshold
        answer = server.client().post("/v1/match", json=body)
        assert answer.status_code == 200, answer.text
        (expected,) = reference(score_model, [(a, b)])[:, 0]
        assert answer.json()["similarity"] == pytest.approx(float(expected), abs=1e-4)
        assert answer.json()["match"] is bool(expected >= 2.5)
    finally:
        assert server.stop() == 0, server.stderr()


def test_eval_scores_a_matcher_by_its_head(
    label_model: Path, score_model: Path, work: Path
) -> None:
    suites = {
        "mrpc": f"{{name: mrpc, type: matching, target: label, data: {work / 'dev.tsv'}, "
        f"threshold_data: {work / 'train.tsv'}, "
        "fields: {label: Quality, text_a: '#1 String', text_b: '#2 String'}}",
        "stsb": f"{{name: stsb, type: matching, data: {work / 'sts-dev.csv'}, format: tsv, "
        "header: false, fields: {score: '4', text_a: '5', text_b: '6'}}",
    }
    dev = pairs(40, 2)
    texts = [(a, b) for a, b, _ in dev]
    for model, task in ((label_model, "mrpc"), (score_model, "stsb")):
        out, suite = work / f"report-{task}", work / f"{task}.yaml"
        suite.write_text(f"tasks:\n  - {suites[task]}\n", encoding="utf-8")
        result = run_cli("eval", str(model), "--suite", str(suite), "--report", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        metrics = report["tasks"][task]
        assert report["details"][task]["settings"]["method"] == "matcher head"
        if task == "mrpc":
            decided = p_match(model, texts) >= 0.5
            gold = np.array([s > 3 for _, _, s in dev])
            assert metrics["threshold"] == 0.5
            assert metrics["f1"] == pytest.approx(binary_f1(decided, gold), abs=1e-9)
        else:
            scores = reference(model, texts)[:, 0]
            gold_scores = np.array([round(s, 3) for _, _, s in dev])
            assert metrics["spearman"] == pytest.approx(spearman(scores, gold_scores), abs=1e-6)
