"""Task fine-tuning of a model given with `--init`, so the API's classify, match and summarize
can use trained models:

- classification and matching: a GPT2ForSequenceClassification head (`train.heads`);
- summarization: the ids of `prompts.summary_pieces(document)` (document, then the cue) +
  summary + <|endoftext|>, with the loss on the summary tokens only; JSONL with document and
  summary fields (like ../shared/data/xsum). Evaluation and serving build the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lmforge.cards import Lineage, ModelCard
from lmforge.config.train import TrainConfig
from lmforge.hf import IGNORE
from lmforge.prompts import SUMMARY_TEMPLATE, summary_pieces
from lmforge.records import Record
from lmforge.registry.resolve import open_model
from lmforge.train.heads import head_spec
from lmforge.train.rows import ListDataset, task_rows
from lmforge.train.run import RunResult, RunSpec, run_training


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


def summary_prompt_ids(tokenizer: Any, document: str, room: int) -> list[int]:
    """The ids a summarizer continues with the summary: each of `prompts.summary_pieces`
    encoded on its own, the document cut to leave `room` tokens in all."""
    before, text, after = (
        list[int](tokenizer(piece, add_special_tokens=False)["input_ids"])
        for piece in summary_pieces(document)
    )
    return before + text[: max(room - len(before) - len(after), 0)] + after


def _summarization(cfg: TrainConfig) -> RunSpec:
    from lmforge.train.metrics import perplexities, summed_loss

    train_rows, valid_rows = task_rows(cfg, (cfg.document_field, cfg.summary_field))
    model, tokenizer, card = open_model(cfg.init, unverified=cfg.unverified)
    context = cfg.context_length or model.config.n_positions
    eot = tokenizer.eos_token_id

    def encode(rows: list[Record]) -> ListDataset:
        items = []
        for row in rows:
            summary = tokenizer(row[cfg.summary_field], add_special_tokens=False)["input_ids"]
            summary = [*summary[: context // 2], eot]
            prompt = summary_prompt_ids(tokenizer, row[cfg.document_field], context - len(summary))
            labels = [IGNORE] * len(prompt) + summary
            items.append({"input_ids": prompt + summary, "labels": labels})
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
            prompt=SUMMARY_TEMPLATE,
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
    spec = _summarization(cfg) if cfg.task == "summarization" else head_spec(cfg)
    spec.extra_callbacks = list(callbacks)
    spec.parent_run_id = parent_run_id
    return run_training(cfg, spec)
