"""`--json` of `eval`, `registry list/show/diff/promote` and `data inspect`: one JSON document
on stdout with every number a dashboard reads. The CLI in-process (click's runner) over a real
embedded MLflow store, two tiny random models and a tiny prepared dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lmforge.cli import cli
from tests.conftest import build_model_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions tiny/1 (evaluated, at @production) and tiny/2, in a store of this module."""
    root = tmp_path_factory.mktemp("json-store")
    patch = pytest.MonkeyPatch()
    patch.setenv("LMFORGE_HOME", str(root / "home"))
    patch.setenv("LMFORGE_NO_PROGRESS", "1")
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for seed in (1, 2):
        model = build_model_dir(root / f"model{seed}", seed=seed)
        invoke("registry", "register", str(model), "--name", "tiny")
    (root / "text.txt").write_text("the cat sat on the mat .\nhello world .\n", "utf-8")
    invoke("registry", "promote", "tiny", "1")
    yield root
    patch.undo()


def invoke(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(cli, list(args))
    # In-process, our errors reach the runner as exceptions (`main` maps them to exit codes).
    exit_code = getattr(result.exception, "exit_code", result.exit_code)
    assert exit_code == code, (result.output, result.exception)
    document: dict[str, Any] = json.loads(result.stdout) if "--json" in args else {}
    return document


def test_eval_json_has_every_metric_time_and_the_version(store: Path) -> None:
    report = invoke(
        "eval", "models:/tiny@production", "--perplexity", str(store / "text.txt"),
        "--report", str(store / "report"), "--json",
    )  # fmt: skip
    assert report["model"]["registry"] == {"name": "tiny", "version": "1"}
    assert len(report["model"]["model_sha256"]) == 64 and report["mlflow_run_id"]
    metrics = report["tasks"]["text"]
    for name in ("token_perplexity", "word_perplexity", "bits_per_byte", "tokens", "words"):
        assert metrics[name] > 0
    assert report["seconds"] >= report["load_seconds"] > 0 and report["threads"] >= 1
    assert report["details"]["text"]["seconds"] >= 0
    assert len(report["details"]["text"]["data"]["sha256"]) == 64


def test_registry_list_json_has_versions_aliases_and_metrics(store: Path) -> None:
    document = invoke("registry", "list", "--json")
    assert [(v["name"], v["version"]) for v in document["versions"]] == [
        ("tiny", "1"),
        ("tiny", "2"),
    ]
    assert document["models"]["tiny"] == {
        "versions": 2,
        "latest": "2",
        "aliases": {"production": "1"},
    }
    assert all(len(v["model_sha256"]) == 64 for v in document["versions"])


def test_registry_show_json_has_metrics_evals_files_and_tags(store: Path) -> None:
    invoke(
        "eval", "models:/tiny/2", "--perplexity", str(store / "text.txt"),
        "--report", str(store / "report2"), "--json",
    )  # fmt: skip
    shown = invoke("registry", "show", "tiny/2", "--json")
    assert (shown["ref"], shown["aliases"]) == ("models:/tiny/2", [])
    assert shown["metrics"]["text.word_perplexity"] > 0
    assert shown["evals"]["text"]["args"] == ["--perplexity", str(store / "text.txt")]
    assert "model.safetensors" in shown["files"]
    assert shown["tags"]["lmforge.model_sha256"] == shown["model_sha256"]
    assert not any(key.startswith("lmforge.metric.") for key in shown["tags"])


def test_registry_diff_json_rows(store: Path) -> None:
    document = invoke("registry", "diff", "tiny", "1", "2", "--json")
    rows = {row["field"]: row for row in document["rows"]}
    assert (document["left"], document["right"]) == ("1", "2")
    assert rows["model_sha256"]["differs"] is True


def test_registry_promote_json_names_the_missing_metric_and_its_command(
    store: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text("metrics:\n  sst2.accuracy: {min: 0.5, suite: sst2.yaml}\n", "utf-8")
    document = invoke("registry", "promote", "tiny", "2", "--gate", str(gate), "--json", code=8)
    assert (document["moved"], document["previous"]) == (False, "1")
    [row] = document["gate"]["rows"]
    assert (row["metric"], row["verdict"], row["min"], row["passed"]) == (
        "sst2.accuracy",
        "missing",
        0.5,
        False,
    )
    command = document["missing"]["sst2.accuracy"]
    assert command.startswith(f"lmforge eval models:/tiny/2 --suite {tmp_path / 'sst2.yaml'}")


def test_data_inspect_json_has_documents_tokens_bytes_and_vocab(tmp_path: Path) -> None:
    text = tmp_path / "tiny.txt"
    text.write_text("just one short line of text here\nand another line of text\n" * 20)
    out = tmp_path / "ds"
    prepared = CliRunner().invoke(
        cli, ["data", "prepare", str(text), "--output", str(out), "--vocab-size", "300"]
    )
    assert prepared.exit_code == 0, prepared.output
    document = invoke("data", "inspect", str(out), "--json")
    assert document["vocab_size"] == document["manifest"]["tokenizer"]["vocab_size"]
    train = document["splits"]["train"]
    assert train["documents"] > 0 and train["tokens"] > 0
    assert train["file_bytes"] == (out / "train.bin").stat().st_size
    assert document["total_tokens"] == sum(s["tokens"] for s in document["splits"].values())
