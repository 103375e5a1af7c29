"""A learning-rate schedule that runs over wall time as well as steps (`--schedule-by time`).

With `--max-time`, a step-sized cosine is cut wherever the clock runs out when the machine is
slower (or busier) than planned, so the run ends at a high learning rate. Here the decay's
progress is max(steps done / max_steps, time spent / max_time): the schedule reaches its end
at whichever comes first, and the time limit then stops the run with the rate near zero. The
warmup likewise ends at its share of the steps or of the time, whichever comes first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


def lr_multiplier(kind: str, step: int, warmup: int, total: int, time_fraction: float) -> float:
    """The factor on the peak rate at `step` (HF's warmup: linear from 0 over `warmup` steps).
    The warmup is the same share of the time budget as of the steps, so a run whose clock runs
    out long before its steps still leaves its warmup in time (and ends near zero)."""
    share = warmup / total if total > 0 else 0.0
    if step < warmup and time_fraction < share:
        return max(step / warmup, time_fraction / share)
    progress = (step - warmup) / max(1, total - warmup) if total > 0 else 0.0
    progress = min(1.0, max(progress, time_fraction))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1.0 - progress
    return 1.0  # constant (after warmup)


def timed_scheduler_factory(
    trainer: Any, kind: str, deadline: float, seconds: float
) -> Callable[..., Any]:
    """A replacement for `trainer.create_scheduler` whose LambdaLR also reads the clock that
    the TimeLimit callback stops at (`deadline`, time.monotonic() seconds)."""
    from torch.optim.lr_scheduler import LambdaLR

    def create_scheduler(num_training_steps: int, optimizer: Any = None) -> Any:
        if trainer.lr_scheduler is None:
            warmup = trainer.args.get_warmup_steps(num_training_steps)

            # A closure, not an object: LambdaLR checkpoints the __dict__ of callable objects,
            # and a resumed run must use its own clock, not the killed process's deadline.
            def factor(step: int) -> float:
                spent = 1.0 - (deadline - time.monotonic()) / seconds
                return lr_multiplier(kind, step, warmup, num_training_steps, spent)

            trainer.lr_scheduler = LambdaLR(optimizer or trainer.optimizer, factor)
        return trainer.lr_scheduler

    return create_scheduler
