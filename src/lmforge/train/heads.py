"""Fine-tuning a GPT2ForSequenceClassification head, shared by the two tasks that have one:

- classification: one text per row, a softmax over the labels found in the data;
- matching: a text pair per row read as one text, `prompts.pair_text(a, b)` (a cross-encoder),
  with a 0/1 label (two labels, "1" = match) or a graded score (one output, regression).

Every text goes through `prompts.task_text` and, when longer than the context, keeps its end
(the head reads the last token): the same as evaluation and serving do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmforge.cards import Lineage, ModelCard
from lmforge.config.train import TrainConfig
from lmforge.errors import DataError
from lmforge.metrics import accuracy, binary_f1, macro_f1, pearson, spearman
from lmforge.prompts import MATCH_LABELS, PAIR_SEPARATOR, SCORE_LABEL, pair_text, task_text
from lmforge.records import Record
from lmforge.registry.resolve import open_model
from lmforge.train.rows import ListDataset, task_rows
from lmforge.train.run import RunSpec


@dataclass
class HeadTask:
    """What a head task reads from a row: the text the head sees and its target."""

    text: Callable[[Record], str]
    target: Callable[[Record], int | float]
    labels: list[str]  # in id order; [SCORE_LABEL] for a regression head
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]]

    @property
    def regression(self) -> bool:
        return self.labels == [SCORE_LABEL]


def classification_task(cfg: TrainConfig, train: list[Record], valid: list[Record]) -> HeadTask:
    labels = sorted({r[cfg.label_column] for r in train})
    if len(labels) < 2:  # one output would be a regression head
        raise DataError(
            f"{cfg.data}: every row has the label {labels[0]!r}; a classifier needs two or more",
            hint=f"check --label-column ({cfg.label_column!r})",
        )
    if unknown := {r[cfg.label_column] for r in valid} - set(labels):
        raise DataError(f"valid labels {sorted(unknown)} never occur in the training data")
    return HeadTask(
        text=lambda r: task_text(r[cfg.text_column]),
        target=lambda r: labels.index(r[cfg.label_column]),
        labels=labels,
        metrics=lambda logits, gold: {
            "accuracy": accuracy(logits.argmax(-1), gold),
            "macro_f1": macro_f1(logits.argmax(-1), gold, len(labels)),
        },
    )


def _number(cfg: TrainConfig, record: Record) -> float:
    value = record[cfg.label_column]
    try:
        return float(value)
    except ValueError:
        raise DataError(
            f"{cfg.data}:{record.line}: {cfg.label_column} {value!r} is not a number",
            hint="matching takes a 0/1 label or a graded score in --label-column",
        ) from None


def matching_task(cfg: TrainConfig, train: list[Record], valid: list[Record]) -> HeadTask:
    values = {_number(cfg, r) for r in [*train, *valid]}
    target = cfg.target
    if target == "auto":
        target = "label" if values <= {0.0, 1.0} else "score"
    if target == "label" and not values <= {0.0, 1.0}:
        odd = sorted(values - {0.0, 1.0})[:3]
        raise DataError(
            f"--target label needs 0/1 values in {cfg.label_column}; found {odd}",
            hint="use --target score for a graded similarity",
        )

    def text(r: Record) -> str:
        return pair_text(r[cfg.text_column], r[cfg.text_b_column])

    if target == "label":
        return HeadTask(
            text=text,
            target=lambda r: int(_number(cfg, r)),
            labels=list(MATCH_LABELS),
            metrics=lambda logits, gold: {
                "accuracy": accuracy(logits.argmax(-1), gold),
                "f1": binary_f1(logits.argmax(-1), gold),
            },
        )
    return HeadTask(
        text=text,
        target=lambda r: _number(cfg, r),
        labels=[SCORE_LABEL],
        metrics=lambda scores, gold: {
            "pearson": pearson(scores.reshape(-1), gold),
            "spearman": spearman(scores.reshape(-1), gold),
        },
    )


def head_spec(cfg: TrainConfig) -> RunSpec:
    """The run of `train --task classification|matching`."""
    from transformers import DataCollatorWithPadding

    matching = cfg.task == "matching"
    fields = [cfg.text_column, cfg.label_column] + ([cfg.text_b_column] if matching else [])
    train_rows, valid_rows = task_rows(cfg, fields)
    task = (matching_task if matching else classification_task)(cfg, train_rows, valid_rows)
    model, tokenizer, card = open_model(cfg.init, kind="classification", unverified=cfg.unverified)
    _fit_head(model, tokenizer.pad_token_id, task)
    context = cfg.context_length or model.config.n_positions

    def encode(rows: list[Record]) -> ListDataset:
        encoded = tokenizer([task.text(r) for r in rows], add_special_tokens=False)["input_ids"]
        return ListDataset(
            [
                {"input_ids": ids[-context:], "attention_mask": [1] * len(ids[-context:])}
                | {"labels": task.target(r)}
                for ids, r in zip(encoded, rows, strict=True)
            ]
        )

    valid = encode(valid_rows)
    collate = DataCollatorWithPadding(tokenizer)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        return task.metrics(np.asarray(prediction.predictions), np.asarray(prediction.label_ids))

    def final_metrics(trained: Any) -> dict[str, float]:
        device = next(trained.parameters()).device
        batches = torch.utils.data.DataLoader(valid, batch_size=32, collate_fn=collate)
        outputs, gold = [], []
        trained.eval()
        with torch.no_grad():
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                outputs.append(trained(**batch).logits.float().cpu().numpy())
                gold.append(batch["labels"].cpu().numpy())
        scored = task.metrics(np.concatenate(outputs), np.concatenate(gold))
        return {f"valid_{name}": value for name, value in scored.items()}

    pair = None
    if matching:
        pair = {"separator": PAIR_SEPARATOR, "target": "score" if task.regression else "label"}
    return RunSpec(
        model=model,
        tokenizer=tokenizer,
        train_dataset=encode(train_rows),
        eval_datasets={"valid": valid},
        final_metrics=final_metrics,
        card=ModelCard(
            task=cfg.task,
            labels=task.labels,
            pair=pair,
            parent=Lineage.of(cfg.init, card, "fine-tuned"),
        ),
        tokens_per_step=0,
        compute_metrics=compute_metrics,
        data_collator=collate,
    )


def _fit_head(model: Any, pad_id: int, task: HeadTask) -> None:
    """A fresh `score` head with one output per label (one for regression), and the config
    that names them, which serving reads."""
    labels = task.labels
    model.config.pad_token_id = pad_id
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.config.problem_type = "regression" if task.regression else "single_label_classification"
    if model.score.out_features != len(labels):
        model.score = torch.nn.Linear(model.config.n_embd, len(labels), bias=False)
    model.config.num_labels = len(labels)
    model.num_labels = len(labels)  # what the loss reads (the config alone leaves it at 2)
