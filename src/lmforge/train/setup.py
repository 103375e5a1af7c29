"""What train, distill and tune share: the LM data of a dataset dir, TrainingArguments from our
options, and one `run_training` that owns the run: output checks, checkpoints and resume,
MLflow tracking, the NaN guard, final metrics, and the atomically written model dir."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import to_dict
from lmforge.config.train import OptimOptions
from lmforge.errors import ConfigError, DataError, ModelError
from lmforge.fsutil import atomic_dir, sha256_file
from lmforge.modelio import write_card
from lmforge.train.checkpoints import checkpoint_dir_for, newest_complete_checkpoint
from lmforge.train.dataset import PackedTokens

log = logging.getLogger(__name__)


@dataclass
class LmData:
    """The splits of a dataset dir as torch Datasets, plus what metrics need."""

    dataset_dir: Path
    manifest: dict[str, Any]
    train: PackedTokens
    valid: PackedTokens
    train_sample: PackedTokens
    test: PackedTokens | None
    tokenizer_json: Path

    def words(self, split: str) -> int | None:
        return self.manifest["splits"][split].get("words")


def lm_data(dataset_dir: Path, context_length: int, seed: int, windows: str) -> LmData:
    from lmforge.data.manifest import read_manifest

    manifest = read_manifest(dataset_dir)
    dtype = manifest["dtype"]
    eot = manifest["tokenizer"]["end_of_text_id"]
    splits = manifest["splits"]
    if splits["valid"]["tokens"] < 2:
        raise DataError(
            f"{dataset_dir} has an empty valid split: training needs one to evaluate on",
            hint="prepare more data, or give --split with a larger valid fraction",
        )

    def split(name: str, mode: str, limit: int | None = None) -> PackedTokens:
        path = dataset_dir / splits[name]["file"]
        return PackedTokens(
            path, dtype, context_length, mode=mode, seed=seed, pad_id=eot, limit=limit
        )

    valid = split("valid", "eval")
    return LmData(
        dataset_dir=dataset_dir,
        manifest=manifest,
        train=split("train", windows),
        valid=valid,
        # The train-valid gap is measured on as many train blocks as valid has.
        train_sample=split("train", "eval", limit=len(valid)),
        test=split("test", "eval") if splits["test"]["tokens"] >= 2 else None,
        tokenizer_json=dataset_dir / manifest["tokenizer"]["file"],
    )


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def pick_device(cfg: OptimOptions) -> str:
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA device is available")
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def training_arguments(
    cfg: OptimOptions, checkpoint_dir: Path, *, best_metric: str = "eval_valid_loss"
):
    from transformers import TrainingArguments

    processes = world_size()
    if cfg.batch_size % (processes * cfg.grad_accum):
        raise ConfigError(
            f"batch_size: {cfg.batch_size} does not split over {processes} process(es) × "
            f"{cfg.grad_accum} accumulation step(s)"
        )
    device = pick_device(cfg)
    precision = cfg.precision
    if precision == "auto":
        import torch

        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and device != "cuda":
        raise ConfigError("precision: fp16 needs CUDA; use fp32 or bf16 on CPU")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    schedule = {"constant": "constant_with_warmup"}.get(cfg.lr_schedule, cfg.lr_schedule)
    greater = not best_metric.endswith("loss")
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=cfg.batch_size // (processes * cfg.grad_accum),
        per_device_eval_batch_size=max(8, cfg.batch_size // (processes * cfg.grad_accum)),
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=schedule,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        adam_beta2=0.95,
        max_grad_norm=cfg.max_grad_norm or 0.0,
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.epochs,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.eval_steps,
        save_total_limit=cfg.save_total_limit + 1,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better=greater,
        logging_steps=max(1, min(50, cfg.eval_steps // 4)),
        logging_nan_inf_filter=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[],
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        ddp_backend=("gloo" if device == "cpu" else "nccl") if processes > 1 else None,
        # Every GPT-2 parameter takes part in every step; searching for unused ones costs a
        # pass over the autograd graph per step.
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        remove_unused_columns=False,
    )


@dataclass
class RunResult:
    output: Path
    metrics: dict[str, float]
    card: dict[str, Any]
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
    card: dict[str, Any]
    tokens_per_step: int  # 0 when batches are padded to varying lengths (task fine-tuning)
    trainer_class: Any = None
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    compute_metrics: Callable | None = None
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

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def run_training(cfg: OptimOptions, spec: RunSpec) -> RunResult:
    from transformers import EarlyStoppingCallback, Trainer
    from transformers.trainer_callback import PrinterCallback

    from lmforge.train.callbacks import MlflowMetrics, NanGuard, ProgressCallback, TimeLimit
    from lmforge.train.plots import loss_curve
    from lmforge.train.tracking import log_model_dir, tracked_run

    quiet_transformers()
    if cfg.schedule_by == "time" and world_size() > 1:
        # Each rank would read its own clock: different rates, drifting replicas.
        raise ConfigError("schedule_by: time runs in one process; use steps under torchrun")
    output, checkpoints = check_output(cfg)
    resume_from = newest_complete_checkpoint(checkpoints) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.warning("no complete checkpoint in %s: starting from the beginning", checkpoints)
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

        # The Trainer builds its scheduler lazily at train(); this replaces that one method.
        trainer.create_scheduler = timed_scheduler_factory(
            trainer, cfg.lr_schedule, time_limit.deadline, cfg.max_time * 60
        )
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
        started_step = 0
        if resume_from is not None:
            started_step = int(resume_from.name.rsplit("-", 1)[1])
        outcome = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if nan_guard.bad_step is not None:
            best = trainer.state.best_model_checkpoint or "none yet"
            raise ModelError(
                f"training diverged: the loss became NaN/Inf at step {nan_guard.bad_step}; "
                f"the last good checkpoint is {best}",
                hint="lower --learning-rate or --max-grad-norm, then --resume",
            )
        if not main:
            return RunResult(output, {}, {}, None)
        metrics = spec.final_metrics(trainer.model)
        metrics["steps"] = float(trainer.state.global_step)
        if spec.tokens_per_step:
            runtime = outcome.metrics["train_runtime"]
            tokens = (trainer.state.global_step - started_step) * spec.tokens_per_step
            # Wall clock, with the periodic evaluations, as a user sees it; and the optimizer
            # steps alone, comparable with a training script that never evaluates.
            evaluating = sum(
                value
                for entry in trainer.state.log_history
                if entry.get("step", 0) > started_step
                for key, value in entry.items()
                if key.startswith("eval_") and key.endswith("_runtime")
            )
            metrics["train_tokens_per_second"] = tokens / max(runtime, 1e-9)
            metrics["step_tokens_per_second"] = tokens / max(runtime - evaluating, 1e-9)
        if time_limit and time_limit.hit:
            log.info("stopped by --max-time after %d steps", trainer.state.global_step)
        history = list(trainer.state.log_history)
        with atomic_dir(output, force=True) as tmp:
            trainer.save_model(str(tmp))
            # The Trainer pickles its arguments next to the weights; a model dir holds no pickle.
            (tmp / "training_args.bin").unlink(missing_ok=True)
            spec.tokenizer.save_pretrained(str(tmp))
            loss_curve(history, tmp / "loss_curve.png", f"{output.name}: loss")
            card = write_card(
                tmp,
                {
                    **spec.card,
                    "training_config": params,
                    "metrics": metrics,
                    "mlflow_run_id": run_id,
                },
            )
        if run_id:
            log_model_dir(output, metrics)
    if not cfg.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return RunResult(output, metrics, card, run_id, history)


def dataset_lineage(data: LmData) -> dict[str, Any]:
    return {
        "dataset": {
            "path": str(data.dataset_dir),
            "manifest_sha256": sha256_file(data.dataset_dir / "manifest.json"),
            "tokenizer_sha256": data.manifest["tokenizer"]["sha256"],
        }
    }


def lm_final_metrics(data: LmData) -> Callable[[Any], dict[str, float]]:
    """Exact valid/test losses and perplexities, plus the train–valid gap."""
    from lmforge.train.metrics import perplexities, split_loss

    def compute(model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        parts = [("valid", data.valid), ("train_sample", data.train_sample), ("test", data.test)]
        for name, dataset in parts:
            if dataset is None:
                continue
            total, tokens = split_loss(model, dataset)
            words = data.words("train" if name == "train_sample" else name)
            scored = perplexities(total, tokens, words if name != "train_sample" else None)
            out.update({f"{name}_{k}": v for k, v in scored.items()})
        out["train_valid_gap"] = out["valid_loss"] - out["train_sample_loss"]
        return out

    return compute
