"""`lmforge train`: a GPT-2 language model on a dataset dir, from scratch or from `--init`; or
task fine-tuning (`--task classification|summarization`, see `tasks.py`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmforge.config.train import TrainConfig
from lmforge.errors import ConfigError
from lmforge.train.setup import (
    RunResult,
    RunSpec,
    dataset_lineage,
    lm_data,
    lm_final_metrics,
    run_training,
)

log = logging.getLogger(__name__)


def build_lm(cfg: TrainConfig, tokenizer_json: Path):
    """(model, tokenizer, lineage) for language modelling on a dataset's tokenizer."""
    from transformers import GPT2LMHeadModel, set_seed

    from lmforge.train.model import (
        check_same_vocabulary,
        lineage_of,
        load_pretrained,
        new_model_config,
        wrap_tokenizer,
    )

    dataset_tokenizer = wrap_tokenizer(tokenizer_json)
    if cfg.init:
        model, tokenizer, card = load_pretrained(cfg.init)
        check_same_vocabulary(tokenizer, dataset_tokenizer, str(tokenizer_json.parent))
        return (
            model,
            tokenizer,
            {"parent": {**lineage_of(cfg.init, card), "relation": "fine-tuned"}},
        )
    set_seed(cfg.seed)
    eot = dataset_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = new_model_config(
        cfg.model_size,
        len(dataset_tokenizer),
        eot,
        n_layer=cfg.n_layer,
        n_embd=cfg.n_embd,
        n_head=cfg.n_head,
        context_length=cfg.context_length,
        dropout=cfg.dropout,
    )
    return GPT2LMHeadModel(config), dataset_tokenizer, {"parent": None}


def train(
    cfg: TrainConfig, *, callbacks: Sequence[Any] = (), parent_run_id: str | None = None
) -> RunResult:
    """Train per `cfg`; `callbacks` join the Trainer's (tune's pruning), and the MLflow run
    becomes a child of `parent_run_id` when given (a tune study's run)."""
    if cfg.task != "lm":
        from lmforge.train.tasks import train_task

        return train_task(cfg, callbacks=callbacks, parent_run_id=parent_run_id)
    dataset_dir = Path(cfg.data)
    from lmforge.data.manifest import read_manifest

    manifest = read_manifest(dataset_dir)
    model, tokenizer, lineage = build_lm(cfg, dataset_dir / manifest["tokenizer"]["file"])
    positions = model.config.n_positions
    context = cfg.context_length or min(positions, 1024)
    if context > positions:
        raise ConfigError(
            f"context_length: {context} is above the model's {positions} positions",
            hint=f"use --context-length {positions} or less",
        )
    data = lm_data(dataset_dir, context, cfg.seed, cfg.windows)
    log.info(
        "model: %d layers × %d, %.2fM parameters; %d training windows of %d tokens",
        model.config.n_layer,
        model.config.n_embd,
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(data.train),
        context,
    )
    spec = RunSpec(
        model=model,
        tokenizer=tokenizer,
        train_dataset=data.train,
        eval_datasets={"valid": data.valid, "train": data.train_sample},
        final_metrics=lm_final_metrics(data),
        card={"task": "lm", **lineage, **dataset_lineage(data), "context_length": context},
        tokens_per_step=cfg.batch_size * context,
        dataset_dir=dataset_dir,
        extra_callbacks=list(callbacks),
        parent_run_id=parent_run_id,
    )
    return run_training(cfg, spec)
