"""`lmforge train / distill / tune` on tiny real models and a slice of PTB, as real runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, corpus, run_cli
from tests.integration.conftest import TINY, card

pytestmark = pytest.mark.integration


def train(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = run_cli("train", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_loss_falls_and_model_dir_is_complete(teacher: Path) -> None:
    meta = card(teacher)
    metrics = meta["metrics"]
    assert metrics["valid_loss"] < math.log(512) - 1.0  # well below a uniform guess
    assert metrics["test_word_perplexity"] > metrics["test_token_perplexity"]
    assert "train_valid_gap" in metrics and metrics["steps"] == 60
    names = {p.name for p in teacher.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "lmforge.json",
        "loss_curve.png",
    } <= names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    assert meta["dataset"]["manifest_sha256"] and meta["parent"] is None
    assert meta["training_config"]["model_size"] == "tiny"
    assert not teacher.with_name("teacher.checkpoints").exists()
    from lmforge.modelio import verify_model_dir

    verify_model_dir(teacher)


def test_tracking_in_the_embedded_mlflow_store(ptb_small: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**cli_env(), "LMFORGE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [a for a in TINY if a != "--no-track"]
    command = [
        sys.executable,
        "-m",
        "lmforge",
        "train",
        "--data",
        str(ptb_small),
        "--output",
        str(tmp_path / "m"),
        *args,
        "--max-steps",
        "10",
        "--eval-steps",
        "5",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    run = mlflow.get_run(card(tmp_path / "m")["mlflow_run_id"])
    assert run.data.params["model_size"] == "tiny"
    assert (
        "eval_valid_loss" in run.data.metrics and "final_test_word_perplexity" in run.data.metrics
    )
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert len(history) >= 2
    assert run.inputs.dataset_inputs[0].dataset.name == ptb_small.name
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "model")}
    assert "model/model.safetensors" in artifacts
    assert (home / "artifacts").is_dir()


def _wait_for_checkpoint(directory: Path, step: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    marker = directory / f"checkpoint-{step}" / "trainer_state.json"
    while not marker.exists():
        assert process.poll() is None, "training ended before the checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.2)


def test_resume_after_sigkill_matches_an_uninterrupted_run(ptb_small: Path, tmp_path: Path) -> None:
    common = [
        "--data",
        str(ptb_small),
        *TINY,
        "--max-steps",
        "40",
        "--eval-steps",
        "10",
        "--dropout",
        "0.1",
        "--save-total-limit",
        "5",
    ]
    train(*common, "--output", str(tmp_path / "straight"))
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "lmforge", "train", *common, "--output", str(out)]
    process = subprocess.Popen(command, env=cli_env(), stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(out.with_name("killed.checkpoints"), 20, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not out.exists()
    again = run_cli("train", *common, "--output", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr
    train(*common, "--output", str(out), "--resume")
    straight, resumed = card(tmp_path / "straight")["metrics"], card(out)["metrics"]
    assert resumed["valid_loss"] == pytest.approx(straight["valid_loss"], abs=2e-3)


def test_distilled_student_improves(teacher: Path, ptb_small: Path, tmp_path: Path) -> None:
    from lmforge.config import build_config
    from lmforge.config.train import DistillConfig
    from lmforge.train.distill import distill

    os.environ["LMFORGE_NO_PROGRESS"] = "1"
    cfg = build_config(
        DistillConfig,
        {
            "teacher": str(teacher),
            "data": str(ptb_small),
            "output": str(tmp_path / "student"),
            "batch_size": 8,
            "max_steps": 30,
            "eval_steps": 10,
            "track": False,
            "learning_rate": 3e-3,
        },
    )
    result = distill(cfg)
    losses = [h["eval_valid_loss"] for h in result.log_history if "eval_valid_loss" in h]
    trained = [h["loss"] for h in result.log_history if "loss" in h]
    assert all(math.isfinite(x) for x in trained)
    assert losses[-1] < losses[0]
    meta = card(tmp_path / "student")
    assert meta["parent"]["relation"] == "distilled"
    assert meta["parent"]["model_sha256"] == card(teacher)["files"]["model.safetensors"]
    assert meta["parent"]["student_init"]["teacher_layers"] == [0]


def test_distillation_loss_does_not_grow_with_gradient_accumulation(
    teacher: Path, ptb_small: Path, tmp_path: Path
) -> None:
    from lmforge.config import build_config
    from lmforge.config.train import DistillConfig
    from lmforge.train.distill import distill

    os.environ["LMFORGE_NO_PROGRESS"] = "1"
    curves = []
    for grad_accum in (1, 2):
        cfg = build_config(
            DistillConfig,
            {
                "teacher": str(teacher),
                "data": str(ptb_small),
                "output": str(tmp_path / f"accumulate-{grad_accum}"),
                "batch_size": 8,
                "grad_accum": grad_accum,
                "max_steps": 4,
                "eval_steps": 4,
                "track": False,
            },
        )
        curves.append([h["loss"] for h in distill(cfg).log_history if "loss" in h])
    # The same windows per optimizer step either way; only the teacher's dropout, inherited by
    # the student, differs. A loss summed over the micro-batches would log twice as much.
    assert len(curves[0]) == 4
    assert curves[1] == pytest.approx(curves[0], rel=0.05)


def test_grid_study_runs_all_four_points(ptb_small: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: [1.0e-3, 4.0e-3]\ndropout: [0.0, 0.1]\n")
    result = run_cli(
        "tune",
        "--data",
        str(ptb_small),
        "--space",
        str(space),
        "--sampler",
        "grid",
        "--trials",
        "4",
        "--no-prune",
        "--output",
        str(tmp_path / "study"),
        *TINY,
        "--max-steps",
        "6",
        "--eval-steps",
        "3",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import optuna

    study = optuna.load_study(
        study_name="study", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    )
    points = {
        (t.params["learning_rate"], t.params["dropout"])
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert points == {(1e-3, 0.0), (1e-3, 0.1), (4e-3, 0.0), (4e-3, 0.1)}
    best = tmp_path / "study" / "best-train.yaml"
    from lmforge.config import build_config, read_yaml
    from lmforge.config.train import TrainConfig

    config = build_config(TrainConfig, {**read_yaml(best), "output": "x"})
    assert config.learning_rate == study.best_params["learning_rate"]
    assert (tmp_path / "study" / "optimization_history.png").stat().st_size > 10_000


def test_torchrun_two_processes_matches_one(ptb_small: Path, tmp_path: Path) -> None:
    common = [
        "--data",
        str(ptb_small),
        *TINY,
        "--max-steps",
        "20",
        "--eval-steps",
        "10",
        "--dropout",
        "0",
        "--keep-checkpoints",
    ]
    train(*common, "--output", str(tmp_path / "one"))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    env = {**cli_env(), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "lmforge",
            "train",
            *common,
            "--output",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = card(tmp_path / "one")["metrics"], card(tmp_path / "two")["metrics"]
    assert card(tmp_path / "two")["training_config"]["world_size"] == 2
    # Without dropout the runs see the same windows in the same global batches (the rank
    # shards are consecutive slices of one seeded order), so they differ only by the order
    # of float sums: the averaged half-batch gradients against one full-batch gradient.
    curves = [training_losses(tmp_path / f"{run}.checkpoints") for run in ("one", "two")]
    assert len(curves[0]) >= 10
    assert curves[1] == pytest.approx(curves[0], rel=1e-3)
    assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-3)


def training_losses(checkpoints: Path) -> list[float]:
    """The logged training loss of every logging step, from the newest checkpoint's state."""
    newest = max(checkpoints.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in history["log_history"] if "loss" in entry]


def fine_tune(task: str, init: Path, data: Path, output: Path, steps: int, *extra: str) -> None:
    """`train --task TASK` on `data` for `steps` steps (evaluated half way), untracked."""
    train(
        *("--task", task, "--init", str(init), "--data", str(data), "--output", str(output)),
        *("--max-steps", str(steps), "--eval-steps", str(steps // 2), "--no-track", *extra),
    )


def test_classification_with_more_than_two_labels(teacher: Path, tmp_path: Path) -> None:
    """A 4-label head trains (the loss once read a stale 2-label count and crashed)."""
    rows = corpus("agnews/train_subset_10k.tsv").read_text(encoding="utf-8").splitlines()[1:161]
    (tmp_path / "topics.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n", "utf-8")
    fine_tune("classification", teacher, tmp_path / "topics.tsv", tmp_path / "topics", 4)
    assert len(card(tmp_path / "topics")["labels"]) == 4


def test_task_fine_tuning(teacher: Path, tmp_path: Path) -> None:
    rows = corpus("sst2/dev_from_train.tsv").read_text(encoding="utf-8").splitlines()[:801]
    (tmp_path / "sst.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    sst = ("--text-column", "sentence", "--batch-size", "8")
    fine_tune("classification", teacher, tmp_path / "sst.tsv", tmp_path / "cls", 10, *sst)
    meta = card(tmp_path / "cls")
    assert meta["task"] == "classification" and meta["labels"] == ["0", "1"]
    assert 0.0 <= meta["metrics"]["valid_accuracy"] <= 1.0 and "valid_macro_f1" in meta["metrics"]
    lines = corpus("xsum/xsum_700.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    (tmp_path / "xsum.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ("--batch-size", "4")
    fine_tune("summarization", teacher, tmp_path / "xsum.jsonl", tmp_path / "sum", 6, *summary)
    assert math.isfinite(card(tmp_path / "sum")["metrics"]["valid_summary_loss"])


def test_bad_inputs(ptb_small: Path, teacher: Path, tmp_path: Path) -> None:
    base = ["--data", str(ptb_small), *TINY, "--max-steps", "4", "--eval-steps", "2"]
    cases = [
        (["--context-length", "4096", "--init", str(teacher)], 2, "above the model's 64 positions"),
        (["--output", str(teacher)], 2, "already exists"),
    ]
    # A dataset whose tokenizer differs from the model's.
    other = tmp_path / "other"
    prepared = run_cli(
        "data", "prepare", "builtin:python-docs", "--vocab-size", "300", "--output", str(other)
    )
    assert prepared.returncode == 0
    cases.append((["--data", str(other), "--init", str(teacher)], 4, "tokenizer mismatch"))
    # Fewer tokens than one training window.
    tiny = tmp_path / "tiny"
    (tmp_path / "t.txt").write_text("a b c\n")
    (tmp_path / "v.txt").write_text("d e f\n")
    run_cli(
        "data",
        "prepare",
        str(tmp_path / "t.txt"),
        "--valid-inputs",
        str(tmp_path / "v.txt"),
        "--tokenizer",
        str(ptb_small),
        "--min-chars",
        "1",
        "--output",
        str(tiny),
        "--dedup",
        "none",
    )
    cases.append((["--data", str(tiny)], 3, "fewer than one window of 64"))
    for extra, code, message in cases:
        output = extra[extra.index("--output") + 1] if "--output" in extra else str(tmp_path / "o")
        args = [*base, *[a for a in extra if a != output and a != "--output"], "--output", output]
        result = run_cli("train", *args)
        assert result.returncode == code and message in result.stderr, (
            extra,
            result.stderr[-2000:],
        )
        assert "Traceback" not in result.stderr
    space = tmp_path / "bad.yaml"
    space.write_text("learning_rate: [1e-3]\nwarp_factor: [9]\nn_layer: {low: 4, high: 2}\n")
    result = run_cli("tune", *base, "--space", str(space), "--output", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "warp_factor: not a searchable train option" in result.stderr
    assert "n_layer: low 4 is above high 2" in result.stderr


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(ptb_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    result = run_cli(
        "train",
        "--data",
        str(ptb_small),
        *TINY,
        "--max-steps",
        "40",
        "--eval-steps",
        "4",
        "--learning-rate",
        "1e6",
        "--max-grad-norm",
        "0",
        "--warmup-ratio",
        "0",
        "--lr-schedule",
        "constant",
        "--output",
        str(out),
    )
    assert result.returncode == 4, result.stderr[-2000:]
    assert "diverged" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    kept = out.with_name("nan.checkpoints")
    assert kept.is_dir()
