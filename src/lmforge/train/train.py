"""`lmforge train`: a GPT-2 language model on a dataset dir, from scratch or from `--init`; or
task fine-tuning (`--task classification|summarization`, see `tasks.py`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmforge.cards import Lineage, ModelCard
from lmforge.config.train import TrainConfig
from lmforge.errors import ConfigError
from lmforge.train.data import lm_data, open_dataset
from lmforge.train.metrics import lm_final_metrics
from lmforge.train.run import RunResult, RunSpec, run_training

log = logging.getLogger(__name__)


def build_lm(cfg: TrainConfig, tokenizer_json: Path) -> tuple[Any, Any, Lineage | None]:
    """(model, tokenizer, parent) for language modelling on a dataset's tokenizer."""
    from transformers import GPT2LMHeadModel, set_seed

    from lmforge.hf import END_OF_TEXT, check_same_vocabulary, new_model_config, wrap_tokenizer
    from lmforge.registry.resolve import open_model

    dataset_tokenizer = wrap_tokenizer(tokenizer_json)
    if cfg.init:
        model, tokenizer, card = open_model(cfg.init, unverified=cfg.unverified)
        check_same_vocabulary(tokenizer, dataset_tokenizer, str(tokenizer_json.parent))
        return model, tokenizer, Lineage.of(cfg.init, card, "fine-tuned")
    set_seed(cfg.seed)
    eot = dataset_tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    assert isinstance(eot, int)  # one token in, one id out
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
    return GPT2LMHeadModel(config), dataset_tokenizer, None


def train(
    cfg: TrainConfig, *, callbacks: Sequence[Any] = (), parent_run_id: str | None = None
) -> RunResult:
    """Train per `cfg`; `callbacks` join the Trainer's (tune's pruning), and the MLflow run
    becomes a child of `parent_run_id` when given (a tune study's run)."""
    if cfg.task != "lm":
        from lmforge.train.tasks import train_task

        return train_task(cfg, callbacks=callbacks, parent_run_id=parent_run_id)
    dataset = open_dataset(Path(cfg.data))
    model, tokenizer, parent = build_lm(cfg, dataset.tokenizer_file)
    positions = model.config.n_positions
    context = cfg.context_length or min(positions, 1024)
    if context > positions:
        raise ConfigError(
            f"context_length: {context} is above the model's {positions} positions",
            hint=f"use --context-length {positions} or less",
        )
    data = lm_data(dataset, context, cfg.seed, cfg.windows)
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
        card=ModelCard(task="lm", parent=parent, dataset=data.lineage(), context_length=context),
        tokens_per_step=cfg.batch_size * context,
        dataset_dir=data.dataset_dir,
        extra_callbacks=list(callbacks),
        parent_run_id=parent_run_id,
    )
    return run_training(cfg, spec)
