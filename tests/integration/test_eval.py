"""`lmforge eval` as a real subprocess on tiny trained models and real corpora: the perplexity
shorthand, a suite with every task type, the baseline gate, canaries and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, corpus, run_cli
from tests.integration.conftest import TINY

pytestmark = pytest.mark.integration


def _report(directory: Path) -> dict:
    return json.loads((directory / "report.json").read_text(encoding="utf-8"))


def test_perplexity_shorthand_and_baseline(teacher: Path, tmp_path: Path) -> None:
    lines = corpus("ptb/ptb.test.txt").read_text(encoding="utf-8").splitlines()[:300]
    text = tmp_path / "ptb_test_300.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(
        "eval", str(teacher), "--perplexity", str(text), "--stride", "32",
        "--report", str(tmp_path / "report"), "--baseline", str(teacher),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = _report(tmp_path / "report")
    metrics = report["tasks"]["ptb_test_300"]
    assert metrics["words"] == sum(len(line.split()) + 1 for line in lines)
    assert 1 < metrics["token_perplexity"] < metrics["word_perplexity"] < 512**2
    details = report["details"]["ptb_test_300"]
    assert details["settings"] == {"context_length": 64, "stride": 32}
    assert details["data"]["sha256"] and report["model"]["model_sha256"]
    assert report["comparison"]["passed"]
    assert {r["metric"] for r in report["comparison"]["rows"]} >= {"ptb_test_300.word_perplexity"}
    assert "| ptb_test_300 | word_perplexity |" in (tmp_path / "report" / "report.md").read_text()

    bad = run_cli(
        "eval", str(teacher), "--perplexity", str(text), "--stride", "100",
        "--report", str(tmp_path / "r2"),
    )  # fmt: skip
    assert bad.returncode == 2 and "stride: 100 is longer than the window of 64" in bad.stderr
    assert not (tmp_path / "r2").exists()


SUITE = """
tasks:
  - name: xsum
    type: summarization
    data: {shared}/xsum/xsum_700.jsonl
    limit: 3
    max_new_tokens: 12
  - name: sst2
    type: classification
    data: {shared}/sst2/dev_from_train.tsv
    fields: {{text: sentence}}
    labels: {{"0": negative, "1": positive}}
    template: "Review: {{text}}\\nSentiment:"
    limit: 24
  - name: agnews
    type: classification
    data: {shared}/agnews/test.csv
    header: false
    fields: {{label: "0", text: "2"}}
    labels: {{"1": world, "2": sports, "3": business, "4": science}}
    limit: 12
  - name: stsb
    type: matching
    data: {shared}/stsb/sts-dev.csv
    format: tsv
    header: false
    fields: {{score: "4", text_a: "5", text_b: "6"}}
    limit: 40
  - name: mrpc
    type: matching
    target: label
    data: {shared}/mrpc/dev.tsv
    fields: {{label: Quality, text_a: "#1 String", text_b: "#2 String"}}
    threshold_data: {shared}/mrpc/train.tsv
    threshold_limit: 40
    limit: 30
  - {{name: sst2-noise, type: robustness, of: sst2, perturbations: [typos, case], rate: 0.3}}
  - name: wiki
    type: perplexity
    data: {shared}/wikitext-2/wiki.valid.raw
    limit: 40
gate:
  "*": {{max_regression: 0.0}}
"""


def test_suite_with_every_task_and_a_failing_gate(
    teacher: Path, ptb_small: Path, tmp_path: Path
) -> None:
    corpus("xsum/xsum_700.jsonl")
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(shared=SHARED_DATA), encoding="utf-8")
    out = tmp_path / "report"
    result = run_cli("eval", str(teacher), "--suite", str(suite), "--report", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = _report(out)
    tasks, details = report["tasks"], report["details"]
    for name in ("rouge1", "rouge2", "rougeL", "bleu"):
        assert 0 <= tasks["xsum"][name] <= 100
    assert details["xsum"]["settings"]["bleu_signature"].startswith("nrefs:1")
    assert len(details["xsum"]["samples"]) == 3
    assert tasks["sst2"]["examples"] == 24 and 0 <= tasks["sst2"]["accuracy"] <= 1
    assert sum(map(sum, details["sst2"]["confusion_matrix"])) == 24
    assert len(details["agnews"]["confusion_matrix"]) == 4
    assert -1 <= tasks["stsb"]["spearman"] <= 1 and tasks["stsb"]["examples"] == 40
    assert 0 <= tasks["mrpc"]["f1"] <= 1 and "threshold" in tasks["mrpc"]
    assert details["mrpc"]["threshold_data"]["path"].endswith("train.tsv")
    noise = tasks["sst2-noise"]
    assert noise["typos_accuracy_ratio"] == pytest.approx(
        noise["typos_accuracy"] / tasks["sst2"]["accuracy"]
    )
    assert tasks["wiki"]["word_perplexity"] > 1 and tasks["wiki"]["bits_per_byte"] > 0
    assert {"confusion_sst2.png", "confusion_agnews.png", "robustness_sst2-noise.png"} <= set(
        report["plots"]
    )
    for name in report["plots"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    # A gate that allows no regression in any quality metric: a different model fails it, and
    # the exit code says so.
    other = tmp_path / "other"
    trained = run_cli(
        "train", "--data", str(ptb_small), "--output", str(other), *TINY,
        "--max-steps", "5", "--eval-steps", "5",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    compared = run_cli(
        "eval", str(other), "--suite", str(suite), "--baseline", str(teacher),
        "--report", str(tmp_path / "cmp"),
    )  # fmt: skip
    assert compared.returncode == 8, compared.stderr[-2000:]
    comparison = _report(tmp_path / "cmp")["comparison"]
    assert not comparison["passed"] and any(not r["passed"] for r in comparison["rows"])
    assert "FAILED" in compared.stdout and (tmp_path / "cmp" / "comparison.png").exists()


def test_canary_exposure_high_when_seen_and_chance_when_not(teacher: Path, tmp_path: Path) -> None:
    root = tmp_path / "text"
    root.mkdir()
    for name, lines in (
        ("train", slice(0, 400)),
        ("valid", slice(0, 100)),
        ("test", slice(100, 200)),
    ):
        source = "train" if name == "train" else "valid"
        text = corpus(f"ptb/ptb.{source}.txt").read_text(encoding="utf-8").splitlines()[lines]
        (root / f"{name}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    data = tmp_path / "ds"
    prepared = run_cli(
        "data", "prepare", str(root / "train.txt"), "--valid-inputs", str(root / "valid.txt"),
        "--test-inputs", str(root / "test.txt"), "--vocab-size", "512", "--dedup", "none",
        "--min-chars", "1", "--canaries", "1", "--canary-repeats", "200", "--output", str(data),
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    manifest = json.loads((data / "manifest.json").read_text())
    (secret,) = [c["secret"] for c in manifest["canaries"]["items"]]
    assert manifest["canaries"]["items"][0]["repeats"] == 200
    model = tmp_path / "memorizer"
    trained = run_cli(
        "train", "--data", str(data), "--output", str(model), *TINY, "--max-steps", "250",
        "--eval-steps", "250", "--learning-rate", "1e-2",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    suite = tmp_path / "leak.yaml"
    suite.write_text(
        f"tasks:\n  - {{type: canary_exposure, dataset: {data}, candidates: 200}}\n"
        f"  - {{type: extraction, dataset: {data}, samples: 8, prefix_tokens: 16, "
        "match_tokens: 16}\n"
    )
    reports = {}
    for name, path in (("seen", model), ("unseen", teacher)):
        result = run_cli("eval", str(path), "--suite", str(suite), "--report", str(tmp_path / name))
        assert result.returncode == 0, result.stderr[-2000:]
        reports[name] = _report(tmp_path / name)
    seen = reports["seen"]["tasks"]["canary_exposure"]
    unseen = reports["unseen"]["tasks"]["canary_exposure"]
    assert seen["exposure_mean"] > 8 > 4 > seen["control_exposure_mean"]
    assert unseen["exposure_mean"] < 5
    assert reports["seen"]["details"]["canary_exposure"]["canaries"][0]["secret"] == secret
    assert 0 <= reports["seen"]["tasks"]["extraction"]["extraction_rate"] <= 1


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("tasks: [{type: perplexity, data: missing.txt}]", "missing.txt does not exist"),
        (
            "tasks: [{type: classification, data: DATA, labels: {'0': bad, '1': good}, "
            "fields: {text: sentence}}]",
            "dev_from_train.tsv:2: label",
        ),
        (
            "tasks: [{type: summarization, data: EMPTY}]",
            "empty.jsonl:2: the summary ('summary') is empty",
        ),
        ("tasks: [{type: canary_exposure, dataset: DS}]", "holds no canaries"),
    ],
)
def test_bad_input_names_file_and_line(
    teacher: Path, ptb_small: Path, tmp_path: Path, suite: str, message: str
) -> None:
    unlisted_label = tmp_path / "dev_from_train.tsv"
    unlisted_label.write_text("sentence\tlabel\na fine film\t3\n", encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(
        '{"document": "d", "summary": "s"}\n{"document": "d", "summary": " "}\n', encoding="utf-8"
    )
    text = suite.replace("DATA", str(unlisted_label)).replace("EMPTY", str(empty))
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("DS", str(ptb_small)), encoding="utf-8")
    result = run_cli("eval", str(teacher), "--suite", str(path), "--report", str(tmp_path / "r"))
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "r").exists()
