"""A task pipeline (configs/tasks/sst2.yaml) end to end at a tiny size: the honest split, a
pre-trained tiny LM, the fine-tuned classifier, registered as `sst2`, evaluated on its version,
promoted through a gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lmforge.pipeline.taskdata import phrase_of_any
from tests.conftest import cli_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
TINY = {
    "limit": "60",  # the first 60 rows of each source file
    "holdout": "5",
    "model_size": "tiny",
    "n_layer": "0",  # 0: the preset's
    "n_embd": "0",
    "n_head": "0",
    "vocab_size": "512",
    "pretrain_text": "",  # the task's own sentences only
    "lm_steps": "4",
    "ft_steps": "4",
    "schedule": "steps",
    "lm_minutes": "0",
    "ft_minutes": "0",
    "batch_size": "8",
    "threads": "1",
}


def tsv_texts(path: Path) -> list[str]:
    return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]


@pytest.mark.skipif(not (DATA / "sst2").is_dir(), reason="../shared/data/sst2 is absent")
def test_sst2_pipeline_trains_registers_evaluates_and_promotes(tmp_path: Path) -> None:
    home, store = tmp_path / "sst2", tmp_path / "store"
    # Every version passes this gate (the tiny model cannot reach the task's floor of 0.85),
    # so the promotion is shown; the gate's refusals have their own tests.
    gate = tmp_path / "gate.yaml"
    gate.write_text("metrics:\n  valid_accuracy: {better: higher, max_regression: 1.0}\n")
    sets = {**TINY, "home": str(home), "gate": str(gate)}
    command = [sys.executable, "-m", "lmforge", "pipeline", "run", "configs/tasks/sst2.yaml"]
    command += ["--no-serve", *[arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")]]
    env = {**cli_env(), "LMFORGE_HOME": str(store)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("data", "corpus", "pretrain", "finetune", "register", "evaluate", "promote"):
        assert f"{step}: done in" in out, out
    assert "serve: skipped (--no-serve)" in out

    data = home / "data"
    held, train = tsv_texts(data / "dev.tsv"), tsv_texts(data / "train.tsv")
    assert len(held) == 5 and train
    assert not [text for text in train if phrase_of_any(text, held)]
    config = json.loads((home / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["negative", "positive"]

    report = json.loads((home / "report" / "report.json").read_text())
    assert report["tasks"]["sst2"]["examples"] == 5
    assert report["tasks"]["sst2-leaky"]["examples"] == 60
    assert 0 <= report["tasks"]["sst2"]["accuracy"] <= 1

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("sst2", "production").version) == "1"
