"""The wall-time-aware learning-rate schedule and precision choices of `train` (no training)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from lmforge.config import build_config
from lmforge.config.train import TrainConfig
from lmforge.errors import ConfigError
from lmforge.train.schedule import lr_multiplier


def test_steps_alone_match_a_warmup_then_cosine() -> None:
    assert lr_multiplier("cosine", 0, 10, 110, 0.0) == 0.0
    assert lr_multiplier("cosine", 5, 10, 110, 0.0) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 10, 10, 110, 0.0) == pytest.approx(1.0)
    assert lr_multiplier("cosine", 60, 10, 110, 0.0) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 110, 10, 110, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier("linear", 60, 10, 110, 0.0) == pytest.approx(0.5)
    assert lr_multiplier("constant", 100, 10, 110, 0.9) == 1.0


def test_time_running_out_first_drives_the_decay() -> None:
    # A quarter of the steps but half of the time: the cosine is half way.
    assert lr_multiplier("cosine", 35, 10, 110, 0.5) == pytest.approx(0.5)
    # Out of time: the rate is zero whatever the step; past the end it stays there.
    assert lr_multiplier("cosine", 20, 10, 110, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier("cosine", 20, 10, 110, 1.7) == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier("linear", 20, 10, 110, 0.75) == pytest.approx(0.25)
    # The warmup is a share of the time too: 90% of the time spent at step 5 is long past it.
    assert lr_multiplier("cosine", 5, 10, 110, 0.9) == pytest.approx(0.0245, abs=1e-4)


def test_warmup_is_a_share_of_the_time_budget() -> None:
    # --max-steps 2000 with a 10% warmup, but the time budget allows 44 steps: half of the
    # warmup's time share gives half the rate, and the run ends near zero, not at the peak.
    assert lr_multiplier("cosine", 10, 200, 2000, 0.05) == pytest.approx(0.5)
    assert lr_multiplier("cosine", 22, 200, 2000, 0.5) == pytest.approx(0.5, abs=0.05)
    assert lr_multiplier("cosine", 44, 200, 2000, 1.0) == pytest.approx(0.0, abs=1e-12)
    # Steps ahead of the clock still warm up by steps.
    assert lr_multiplier("cosine", 150, 200, 2000, 0.01) == pytest.approx(0.75)


def test_timed_scheduler_reads_the_deadline_clock() -> None:
    import torch

    from lmforge.train.schedule import timed_scheduler_factory

    class FakeArgs:
        def get_warmup_steps(self, steps: int) -> int:
            return 0

    class FakeTrainer:
        args = FakeArgs()
        lr_scheduler = None
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    trainer = FakeTrainer()
    seconds = 100.0
    deadline = time.monotonic() + seconds / 2  # half of the time is already spent
    scheduler = timed_scheduler_factory(trainer, "cosine", deadline, seconds)(1000)
    assert trainer.lr_scheduler is scheduler
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5, abs=0.01)
    # The checkpointed state holds no clock: a resumed run reads its own.
    assert not scheduler.state_dict()["lr_lambdas"][0]
    assert math.isfinite(scheduler.get_last_lr()[0])


def test_schedule_by_time_needs_max_time() -> None:
    with pytest.raises(ConfigError, match="schedule_by: time needs --max-time"):
        build_config(
            TrainConfig, {"data": "d", "output": "o", "schedule_by": "time", "max_steps": 10}
        )
    config = build_config(
        TrainConfig,
        {"data": "d", "output": "o", "schedule_by": "time", "max_time": 5, "precision": "bf16"},
    )
    assert config.schedule_by == "time" and config.precision == "bf16"


def test_bf16_autocast_is_allowed_on_cpu_and_fp16_is_not(tmp_path: Path) -> None:
    from lmforge.train.args import training_arguments

    base = {"data": "d", "output": "o", "device": "cpu", "max_steps": 10}
    args = training_arguments(
        build_config(TrainConfig, {**base, "precision": "bf16"}), tmp_path / "c"
    )
    assert args.bf16 and args.use_cpu and not args.fp16
    assert not training_arguments(build_config(TrainConfig, base), tmp_path / "c").bf16
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        training_arguments(build_config(TrainConfig, {**base, "precision": "fp16"}), tmp_path / "c")
