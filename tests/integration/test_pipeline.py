"""The quickstart pipeline end to end (without serving) on a tiny budget, then re-run: every
step is skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import cli_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run_pipeline(home: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lmforge",
            "pipeline",
            "run",
            "configs/quickstart.yaml",
            "--set",
            f"home={home}",
            "--set",
            "model_size=tiny",
            "--set",
            "steps=12",
            "--no-serve",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**cli_env(), "LMFORGE_HOME": str(home / "store")},
        timeout=900,
    )


def test_quickstart_pipeline_runs_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "qs"
    first = run_pipeline(home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    for step in ("prepare", "train", "distill", "register-teacher", "register-student"):
        assert f"{step}: done in" in out, out
    assert "promote-teacher: done" in out
    # The gate decides about the student; either way production has a holder.
    assert "promote-student: done" in out or "promote-student: refused" in out
    assert "serve: skipped (--no-serve)" in out
    assert "@production" in out or "production" in out
    assert (home / "teacher" / "model.safetensors").exists()
    assert (home / "student" / "lmforge.json").exists()
    # The evaluation: student against teacher on the packaged suite plus test perplexity; the
    # gate's verdict may go either way, and the numbers land in the student's MLflow run.
    assert "evaluate: done in" in out or "evaluate: refused" in out
    report = json.loads((home / "report" / "report.json").read_text())
    assert set(report["tasks"]) == {"topics", "summaries", "topics-noise", "data-test"}
    assert report["tasks"]["topics"]["examples"] == 16
    assert report["baseline"]["model"]["ref"] == str(home / "teacher")
    assert report["comparison"]["rows"] and (home / "report" / "confusion_topics.png").exists()
    run_id = json.loads((home / "student" / "lmforge.json").read_text())["mlflow_run_id"]
    store = f"sqlite:///{home / 'store' / 'mlflow.db'}"
    logged = MlflowClient(tracking_uri=store).get_run(run_id).data.metrics
    assert logged["eval.topics.accuracy"] == report["tasks"]["topics"]["accuracy"]

    again = run_pipeline(home)
    assert again.returncode == 0, again.stderr[-3000:]
    for step in ("prepare", "train", "distill", "register-teacher", "promote-teacher"):
        assert f"{step}: skipped (already done" in again.stdout
    assert "register-teacher: done" not in again.stdout


def test_a_bad_pipeline_file_names_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - name: a\n    runn: train\n")
    result = subprocess.run(
        [sys.executable, "-m", "lmforge", "pipeline", "run", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "LMFORGE_NO_PROGRESS": "1"},
    )
    assert result.returncode == 2
    assert "steps[0]" in result.stderr and "runn" in result.stderr
