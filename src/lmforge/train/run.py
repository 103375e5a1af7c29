"""One `run_training` that owns a run for train, distill, tune trials and task fine-tuning:
output checks, checkpoints and resume, MLflow tracking, the NaN guard, final metrics, and the
atomically written model dir with its card."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.cards import ModelCard
from lmforge.config import to_dict
from lmforge.config.train import OptimOptions
from lmforge.errors import ConfigError, ModelError
from lmforge.fsutil import atomic_dir
from lmforge.train.args import is_main_process, process_rank, training_arguments, world_size
from lmforge.train.checkpoints import checkpoint_dir_for, newest_complete_checkpoint

if TYPE_CHECKING:
    from lmforge.train.callbacks import NanGuard, TimeLimit

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    output: Path
    metrics: dict[str, float]
    card: ModelCard | None  # None on the torchrun ranks that do not write the model dir
    run_id: str | None
    log_history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunSpec:
    """What differs between train, distill, tune trials and task fine-tuning."""

    model: Any
    tokenizer: Any
    train_dataset: Any
    eval_datasets: dict[str, Any]
    final_metrics: Callable[[Any], dict[str, float]]
    card: ModelCard  # what the run knows up front; run_training adds config, metrics, run id
    tokens_per_step: int  # 0 when batches are padded to varying lengths (task fine-tuning)
    trainer_class: Any = None
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    compute_metrics: Callable[[Any], dict[str, float]] | None = None
    data_collator: Any = None
    best_metric: str = "eval_valid_loss"
    extra_callbacks: list[Any] = field(default_factory=list)
    dataset_dir: Path | None = None
    parent_run_id: str | None = None


def check_output(cfg: OptimOptions) -> tuple[Path, Path]:
    """(model dir, checkpoint dir) after refusing to clobber work that exists."""
    output = Path(cfg.output)
    checkpoints = checkpoint_dir_for(output)
    if not is_main_process():  # under torchrun, rank 0 checks and prepares the dirs
        return output, checkpoints
    if output.exists() and not cfg.force:
        raise ConfigError(
            f"output {output} already exists", hint="pass --force to replace it, or pick another"
        )
    if checkpoints.exists() and not cfg.resume:
        if not cfg.force:
            raise ConfigError(
                f"checkpoints of an earlier run are in {checkpoints}",
                hint="pass --resume to continue that run, or --force to start over",
            )
        shutil.rmtree(checkpoints)
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output: cannot write to {checkpoints.parent}: {exc.strerror}") from exc
    return output, checkpoints


def quiet_transformers() -> None:
    """Our progress bar and log lines replace the library's per-step prints and shard bars."""
    import transformers

    # transformers leaves its logging helpers unannotated.
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def _trainer(
    cfg: OptimOptions, spec: RunSpec, checkpoints: Path
) -> tuple[Any, NanGuard, TimeLimit | None]:
    """(Trainer, its NaN guard, its time limit or None) with our callbacks in place."""
    from transformers import EarlyStoppingCallback, Trainer
    from transformers.trainer_callback import PrinterCallback

    from lmforge.train.callbacks import MlflowMetrics, NanGuard, ProgressCallback, TimeLimit

    args = training_arguments(cfg, checkpoints, best_metric=spec.best_metric)
    nan_guard = NanGuard()
    callbacks = [nan_guard, ProgressCallback(spec.tokens_per_step), *spec.extra_callbacks]
    if cfg.track:
        callbacks.append(MlflowMetrics())
    if cfg.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping))
    time_limit = TimeLimit(cfg.max_time) if cfg.max_time else None
    if time_limit:
        callbacks.append(time_limit)
    trainer = (spec.trainer_class or Trainer)(
        model=spec.model,
        args=args,
        train_dataset=spec.train_dataset,
        eval_dataset=spec.eval_datasets,
        data_collator=spec.data_collator,
        compute_metrics=spec.compute_metrics,
        callbacks=callbacks,
        **spec.trainer_kwargs,
    )
    trainer.remove_callback(PrinterCallback)
    if world_size() > 1:
        import torch

        # The Trainer seeds every rank alike, so the halves of a global batch would share their
        # dropout masks; each rank draws its own. The data order has its own seed (data_seed),
        # and the Trainer's checkpoints keep each rank's generator for --resume.
        torch.manual_seed(cfg.seed + process_rank())
    if time_limit and cfg.schedule_by == "time":
        from lmforge.train.schedule import timed_scheduler_factory

        # The Trainer builds its scheduler lazily at train(); this replaces that one method
        # on this one instance, which is what mypy's method-assign warns about.
        trainer.create_scheduler = timed_scheduler_factory(  # type: ignore[method-assign]
            trainer, cfg.lr_schedule, time_limit.deadline, cfg.max_time * 60
        )
    return trainer, nan_guard, time_limit


def _throughput(
    trainer: Any, runtime: float, tokens_per_step: int, started_step: int
) -> dict[str, float]:
    """Tokens per second since `started_step`: by the wall clock, with the periodic
    evaluations, as a user sees it; and of the optimizer steps alone, comparable with a
    training script that never evaluates."""
    tokens = (trainer.state.global_step - started_step) * tokens_per_step
    evaluating = sum(
        value
        for entry in trainer.state.log_history
        if entry.get("step", 0) > started_step
        for key, value in entry.items()
        if key.startswith("eval_") and key.endswith("_runtime")
    )
    return {
        "train_tokens_per_second": tokens / max(runtime, 1e-9),
        "step_tokens_per_second": tokens / max(runtime - evaluating, 1e-9),
    }


def _save_model_dir(trainer: Any, spec: RunSpec, output: Path, card: ModelCard) -> ModelCard:
    """Weights, tokenizer, loss curve and card, written atomically to `output`."""
    from lmforge.train.plots import loss_curve

    with atomic_dir(output, force=True) as tmp:
        trainer.save_model(str(tmp))
        # The Trainer pickles its arguments next to the weights; a model dir holds no pickle.
        (tmp / "training_args.bin").unlink(missing_ok=True)
        spec.tokenizer.save_pretrained(str(tmp))
        loss_curve(trainer.state.log_history, tmp / "loss_curve.png", f"{output.name}: loss")
        return card.write(tmp)


def run_training(cfg: OptimOptions, spec: RunSpec) -> RunResult:
    from lmforge.train.tracking import log_model_dir, tracked_run

    quiet_transformers()
    if cfg.schedule_by == "time" and world_size() > 1:
        # Each rank would read its own clock: different rates, drifting replicas.
        raise ConfigError("schedule_by: time runs in one process; use steps under torchrun")
    output, checkpoints = check_output(cfg)
    resume_from = newest_complete_checkpoint(checkpoints) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.warning("no complete checkpoint in %s: starting from the beginning", checkpoints)
    trainer, nan_guard, time_limit = _trainer(cfg, spec, checkpoints)
    main = is_main_process()
    params = {k: v for k, v in to_dict(cfg).items() if k not in ("force", "resume")}
    params["world_size"] = world_size()
    with tracked_run(
        enabled=cfg.track and main,
        experiment=cfg.experiment,
        run_name=cfg.run_name or output.name,
        params=params,
        state_dir=checkpoints,
        dataset_dir=spec.dataset_dir,
        parent_run_id=spec.parent_run_id,
    ) as run_id:
        started_step = int(resume_from.name.rsplit("-", 1)[1]) if resume_from else 0
        outcome = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if nan_guard.bad_step is not None:
            best = trainer.state.best_model_checkpoint or "none yet"
            raise ModelError(
                f"training diverged: the loss became NaN/Inf at step {nan_guard.bad_step}; "
                f"the last good checkpoint is {best}",
                hint="lower --learning-rate or --max-grad-norm, then --resume",
            )
        if not main:
            return RunResult(output, {}, None, None)
        metrics = spec.final_metrics(trainer.model)
        metrics["steps"] = float(trainer.state.global_step)
        if spec.tokens_per_step:
            runtime = outcome.metrics["train_runtime"]
            metrics.update(_throughput(trainer, runtime, spec.tokens_per_step, started_step))
        if time_limit and time_limit.hit:
            log.info("stopped by --max-time after %d steps", trainer.state.global_step)
        history = list(trainer.state.log_history)
        card = replace(spec.card, training_config=params, metrics=metrics, mlflow_run_id=run_id)
        card = _save_model_dir(trainer, spec, output, card)
        if run_id:
            log_model_dir(output, metrics)
    if not cfg.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return RunResult(output, metrics, card, run_id, history)
