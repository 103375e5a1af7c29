"""Evaluation feeds the gate: `lmforge eval models:/NAME/N` records its metrics on that version
(tags and its MLflow run), and `registry promote` holds a candidate to them — refusing a
regression against the alias holder, a value below the gate's floor, and a version that was
never evaluated (naming the exact `lmforge eval` command), and accepting a good one. A real
embedded MLflow store and two tiny random models with cards."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from lmforge.config.evaluate import EvalConfig
from lmforge.config.registry import PromoteConfig
from lmforge.errors import ExitCode
from tests.conftest import build_model_dir, cli_env, run_cli

pytestmark = pytest.mark.integration

SUITE = """\
tasks:
  - name: sst2
    type: classification
    data: sst2.tsv
    fields: {text: sentence}
    labels: {"0": negative, "1": positive}
  - name: ptb
    type: perplexity
    data: ptb.txt
"""
ROWS = [
    ("a gorgeous , witty , seductive movie .", 1),
    ("the acting is dreadful and the plot is dull .", 0),
    ("one of the best films of the year .", 1),
    ("a tedious , lifeless mess .", 0),
    ("charming and funny from start to finish .", 1),
    ("it never rises above its clumsy script .", 0),
]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    home = tmp_path / "home"
    monkeypatch.setenv("LMFORGE_HOME", str(home))
    monkeypatch.setenv("LMFORGE_NO_PROGRESS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {**cli_env(), "LMFORGE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    # The eval command runs in tmp_path (its --report is relative): a relative PYTHONPATH
    # (`PYTHONPATH=src`) must still name this tree there.
    paths = env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in paths if p)
    return env


def write_suite(root: Path) -> Path:
    lines = ["sentence\tlabel", *(f"{text}\t{label}" for text, label in ROWS)]
    (root / "sst2.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "ptb.txt").write_text("the cat sat on the mat .\nhello world .\n" * 4, "utf-8")
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    return root / "suite.yaml"


def write_gate(path: Path, rules: str) -> Path:
    path.write_text(f"metrics:\n{rules}", encoding="utf-8")
    return path


def evaluate(ref: str, suite: Path, report: Path) -> dict[str, Any]:
    from lmforge.evaluate.eval import evaluate as run

    return run(EvalConfig(model=ref, suite=str(suite), report=str(report), batch_size=4))


def version(name: str, number: str) -> Any:
    from lmforge.registry.store import client

    return client().get_model_version(name, number)


def test_eval_results_feed_the_promotion_gate(store: dict[str, str], tmp_path: Path) -> None:
    from lmforge.registry.promote import promote
    from lmforge.registry.register import register
    from lmforge.registry.store import client

    suite = write_suite(tmp_path)
    for seed in (1, 2):
        register(build_model_dir(tmp_path / f"model{seed}", seed=seed), "tiny")
    gate = write_gate(
        tmp_path / "gate.yaml",
        "  sst2.accuracy: {max_regression: 0.0, min: 0.0, suite: suite.yaml}\n"
        "  ptb.word_perplexity: {max_regression: 0.0}\n",
    )

    # Never evaluated: refused with the exact command, which then records the metric.
    refused = run_cli("registry", "promote", "tiny", "1", "--gate", str(gate), env=store)
    assert refused.returncode == ExitCode.GATE_REFUSED, refused.stderr
    assert "lacks sst2.accuracy, which the gate requires" in refused.stderr
    found = re.search(r"run: (lmforge eval .+?) \(pass --force", refused.stderr)
    assert found, refused.stderr
    command = shlex.split(found[1])
    assert command[2:6] == ["models:/tiny/1", "--suite", str(suite), "--report"]
    ran = run_cli(*command[1:], cwd=tmp_path, env=store)
    assert ran.returncode == 0, ran.stderr[-3000:]
    first = version("tiny", "1")
    assert float(first.tags["lmforge.metric.sst2.accuracy"]) >= 0.0
    assert json.loads(first.tags["lmforge.eval.sst2"])["args"] == ["--suite", str(suite)]
    logged = client().get_run(first.run_id).data.metrics
    assert "eval.sst2.accuracy" in logged and "eval.ptb.word_perplexity" in logged

    # An alias reference records on the version it resolved to.
    assert promote(PromoteConfig(name="tiny", version="1", gate=str(gate))).moved
    report = evaluate("models:/tiny@production", suite, tmp_path / "again")
    assert report["model"]["registry"] == {"name": "tiny", "version": "1"}
    assert report["mlflow_run_id"] == first.run_id
    second = evaluate("models:/tiny/2", suite, tmp_path / "second")["tasks"]
    first_tasks = report["tasks"]

    # The worse perplexity of the two regresses against the holder's.
    ppl = {"1": first_tasks["ptb"]["word_perplexity"], "2": second["ptb"]["word_perplexity"]}
    better, worse = sorted(ppl, key=ppl.get)
    client().set_registered_model_alias("tiny", "production", better)
    regressed = promote(PromoteConfig(name="tiny", version=worse, gate=str(gate)))
    assert not regressed.moved and regressed.refusal is not None
    assert f"refused: v{worse} regresses against @production (v{better})" in str(regressed.refusal)
    rows = {row["metric"]: row for row in regressed.to_json()["gate"]["rows"]}
    assert rows["ptb.word_perplexity"]["verdict"] == "regressed"

    # A floor above the candidate's accuracy refuses it whatever the holder has.
    accuracy = float(version("tiny", worse).tags["lmforge.metric.sst2.accuracy"])
    lenient = "  ptb.word_perplexity: {max_regression: 100}\n"
    high = write_gate(
        tmp_path / "high.yaml",
        f"  sst2.accuracy: {{max_regression: 100, min: {accuracy + 0.001}}}\n{lenient}",
    )
    below = promote(PromoteConfig(name="tiny", version=worse, gate=str(high)))
    assert not below.moved and below.refusal is not None
    assert "sst2.accuracy" in str(below.refusal) and "below the floor" in str(below.refusal)
    assert below.refusal.exit_code == ExitCode.GATE_REFUSED

    # At the floor and within the tolerance: accepted.
    fair = write_gate(
        tmp_path / "fair.yaml",
        f"  sst2.accuracy: {{max_regression: 100, min: {accuracy}}}\n{lenient}",
    )
    accepted = promote(PromoteConfig(name="tiny", version=worse, gate=str(fair)))
    assert accepted.moved and accepted.comparison.passed and accepted.previous == better
    assert {c.metric: c.verdict for c in accepted.comparison.checks}["sst2.accuracy"] == "ok"
