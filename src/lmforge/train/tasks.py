"""Task fine-tuning of a model given with `--init`, so the API's classify and summarize can use
trained models:

- classification: GPT2ForSequenceClassification on a .tsv/.csv/.jsonl with text and label
  columns; accuracy and macro-F1 on valid;
- summarization: `lmforge.prompts.summary_prompt(document) + summary + <|endoftext|>`, with the
  loss on the summary tokens only; JSONL with document and summary fields (like
  ../shared/data/xsum). Evaluation and serving use that same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.cards import Lineage, ModelCard
from lmforge.config.train import TrainConfig
from lmforge.errors import DataError
from lmforge.hf import IGNORE
from lmforge.metrics import macro_f1
from lmforge.prompts import SUMMARY_CUE
from lmforge.records import Record, read_records
from lmforge.registry.resolve import open_model
from lmforge.train.run import RunResult, RunSpec, run_training

VALID_FRACTION = 0.05


def split_off_valid(rows: list[Record], seed: int) -> tuple[list[Record], list[Record]]:
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = max(1, int(len(rows) * VALID_FRACTION))
    return [rows[i] for i in order[cut:]], [rows[i] for i in order[:cut]]


class ListDataset(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def _rows(cfg: TrainConfig, fields: Sequence[str]) -> tuple[list[Record], list[Record]]:
    rows = read_records(Path(cfg.data), fields)
    if cfg.valid_data:
        return rows, read_records(Path(cfg.valid_data), fields)
    return split_off_valid(rows, cfg.seed)


def _classification(cfg: TrainConfig) -> RunSpec:
    from transformers import DataCollatorWithPadding

    train_rows, valid_rows = _rows(cfg, (cfg.text_column, cfg.label_column))
    labels = sorted({r[cfg.label_column] for r in train_rows})
    unknown = {r[cfg.label_column] for r in valid_rows} - set(labels)
    if unknown:
        raise DataError(f"valid labels {sorted(unknown)} never occur in the training data")
    model, tokenizer, card = open_model(cfg.init, kind="classification", unverified=cfg.unverified)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    if model.score.out_features != len(labels):
        model.score = torch.nn.Linear(model.config.n_embd, len(labels), bias=False)
    model.config.num_labels = len(labels)
    model.num_labels = len(labels)  # what the loss reads (the config alone leaves it at 2)
    context = cfg.context_length or model.config.n_positions

    def encode(rows: list[Record]) -> ListDataset:
        encoded = tokenizer([r[cfg.text_column] for r in rows], truncation=True, max_length=context)
        return ListDataset(
            [
                {
                    "input_ids": ids,
                    "attention_mask": mask,
                    "labels": labels.index(r[cfg.label_column]),
                }
                for ids, mask, r in zip(
                    encoded["input_ids"], encoded["attention_mask"], rows, strict=True
                )
            ]
        )

    valid = encode(valid_rows)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        guessed = np.argmax(prediction.predictions, axis=-1)
        gold = prediction.label_ids
        return {
            "accuracy": float(np.mean(guessed == gold)),
            "macro_f1": macro_f1(guessed, gold, len(labels)),
        }

    def final_metrics(trained: Any) -> dict[str, float]:
        device = next(trained.parameters()).device
        batches = torch.utils.data.DataLoader(
            valid, batch_size=32, collate_fn=DataCollatorWithPadding(tokenizer)
        )
        guessed, gold = [], []
        trained.eval()
        with torch.no_grad():
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                guessed.append(trained(**batch).logits.argmax(-1).cpu().numpy())
                gold.append(batch["labels"].cpu().numpy())
        g, y = np.concatenate(guessed), np.concatenate(gold)
        return {
            "valid_accuracy": float(np.mean(g == y)),
            "valid_macro_f1": macro_f1(g, y, len(labels)),
        }

    return RunSpec(
        model=model,
        tokenizer=tokenizer,
        train_dataset=encode(train_rows),
        eval_datasets={"valid": valid},
        final_metrics=final_metrics,
        card=ModelCard(
            task="classification",
            labels=labels,
            parent=Lineage.of(cfg.init, card, "fine-tuned"),
        ),
        tokens_per_step=0,
        compute_metrics=compute_metrics,
        data_collator=DataCollatorWithPadding(tokenizer),
    )


class PadWithIgnoredLabels:
    """Pads input ids with the pad token and labels with the ignore index."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(i["input_ids"]) for i in items)
        ids = [i["input_ids"] + [self.pad_id] * (width - len(i["input_ids"])) for i in items]
        labels = [i["labels"] + [IGNORE] * (width - len(i["labels"])) for i in items]
        mask = [[1] * len(i["input_ids"]) + [0] * (width - len(i["input_ids"])) for i in items]
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
        }


def _summarization(cfg: TrainConfig) -> RunSpec:
    from lmforge.train.metrics import perplexities, summed_loss

    train_rows, valid_rows = _rows(cfg, (cfg.document_field, cfg.summary_field))
    model, tokenizer, card = open_model(cfg.init, unverified=cfg.unverified)
    context = cfg.context_length or model.config.n_positions
    prompt_ids = tokenizer(SUMMARY_CUE, add_special_tokens=False)["input_ids"]
    eot = tokenizer.eos_token_id

    def encode(rows: list[Record]) -> ListDataset:
        items = []
        for row in rows:
            summary = tokenizer(row[cfg.summary_field], add_special_tokens=False)["input_ids"]
            summary = [*summary[: context // 2], eot]
            budget = context - len(prompt_ids) - len(summary)
            document = tokenizer(row[cfg.document_field], add_special_tokens=False)["input_ids"][
                :budget
            ]
            ids = document + prompt_ids + summary
            labels = [IGNORE] * (len(document) + len(prompt_ids)) + summary
            items.append({"input_ids": ids, "labels": labels})
        return ListDataset(items)

    valid = encode(valid_rows)
    collate = PadWithIgnoredLabels(tokenizer.pad_token_id)

    def final_metrics(trained: Any) -> dict[str, float]:
        batches = torch.utils.data.DataLoader(valid, batch_size=8, collate_fn=collate)
        total, count = summed_loss(trained, batches)
        scored = perplexities(total, count, None)
        return {f"valid_summary_{k}": v for k, v in scored.items()}

    return RunSpec(
        model=model,
        tokenizer=tokenizer,
        train_dataset=encode(train_rows),
        eval_datasets={"valid": valid},
        final_metrics=final_metrics,
        card=ModelCard(
            task="summarization",
            prompt=SUMMARY_CUE,
            parent=Lineage.of(cfg.init, card, "fine-tuned"),
        ),
        tokens_per_step=0,
        data_collator=collate,
    )


def train_task(
    cfg: TrainConfig, *, callbacks: Sequence[Any] = (), parent_run_id: str | None = None
) -> RunResult:
    from transformers import set_seed

    set_seed(cfg.seed)
    spec = _classification(cfg) if cfg.task == "classification" else _summarization(cfg)
    spec.extra_callbacks = list(callbacks)
    spec.parent_run_id = parent_run_id
    return run_training(cfg, spec)
