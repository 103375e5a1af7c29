"""Trainer arguments from our options: the per-device batch over processes and accumulation,
the device and precision, and the torchrun process this is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from lmforge.config.train import OptimOptions
from lmforge.errors import ConfigError
from lmforge.threads import apply_threads

if TYPE_CHECKING:
    from transformers import TrainingArguments


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
) -> TrainingArguments:
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
    apply_threads(cfg.threads)
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
