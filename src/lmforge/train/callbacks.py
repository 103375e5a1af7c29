"""Trainer callbacks: progress with tokens/s (a bar, or log lines off a terminal), a NaN
guard, a wall-clock limit, and per-step metric logging to the active MLflow run."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from lmforge.progress import ProgressLine, live_display, progress_disabled, stderr_console

log = logging.getLogger("lmforge.train")


class ProgressCallback(TrainerCallback):
    """Progress of the main process with loss, tokens/s and ETA: a rich bar on a terminal, a
    log line at an interval when stderr is not one (lmforge.progress)."""

    def __init__(
        self,
        tokens_per_step: int,
        *,
        live: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.tokens_per_step = tokens_per_step
        self.live = live
        self.interval = interval
        self.clock = clock
        self.progress: Any = None
        self.line: ProgressLine | None = None
        self.started = 0.0
        self.first_step = 0
        self.last: dict[str, float] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or progress_disabled():
            return
        self.started = self.clock()
        self.first_step = state.global_step
        if not (live_display() if self.live is None else self.live):
            self.line = ProgressLine(
                "train",
                state.max_steps,
                "steps",
                interval=self.interval,
                clock=self.clock,
                completed=state.global_step,
            )
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr_console,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, info=""
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.progress is None and self.line is None:
            return
        elapsed = self.clock() - self.started
        rate = (state.global_step - self.first_step) * self.tokens_per_step / max(elapsed, 1e-9)
        info = f"{rate:,.0f} tok/s" if self.tokens_per_step else ""
        if "loss" in self.last:
            info += f" loss {self.last['loss']:.3f}"
        if "eval_valid_loss" in self.last:
            info += f" valid {self.last['eval_valid_loss']:.3f}"
        if self.line is not None:
            self.line.update(completed=state.global_step, info=info.strip())
        else:
            self.progress.update(self.task, completed=state.global_step, info=info)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        self.last.update({k: v for k, v in (logs or {}).items() if isinstance(v, float)})

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        losses = {k: v for k, v in (metrics or {}).items() if k.endswith("_loss")}
        shown = ", ".join(f"{k.removeprefix('eval_')} {v:.4f}" for k, v in losses.items())
        log.info("step %d: %s", state.global_step, shown)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.line is not None:
            self.line.update(completed=state.global_step)
            self.line.finish()
            self.line = None


class NanGuard(TrainerCallback):
    """Stops training when the logged loss is NaN/Inf, without saving the broken state: the
    last good checkpoint stays the newest one."""

    def __init__(self) -> None:
        self.bad_step: int | None = None

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.bad_step = state.global_step
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False


class TimeLimit(TrainerCallback):
    """Stops (evaluating and saving first) once `minutes` of wall time have passed."""

    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + minutes * 60
        self.hit = False

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if time.monotonic() >= self.deadline:
            self.hit = True
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True


class MlflowMetrics(TrainerCallback):
    """Logs every number the Trainer logs to the active MLflow run, at its step."""

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        import mlflow

        numbers = {
            k: float(v)
            for k, v in (logs or {}).items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        if numbers and mlflow.active_run() is not None:
            mlflow.log_metrics(numbers, step=state.global_step)
