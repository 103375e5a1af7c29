"""Baseline for `lmforge train`'s throughput: a plain Hugging Face Trainer script on the same
model shape and the same packed tokens, no evaluation, no tracking.

    python bench/plain_trainer.py DATASET_DIR --steps 60 --batch-size 32 --context 128
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments


class Blocks(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, path: Path, dtype: str, context: int) -> None:
        self.tokens = np.memmap(path, dtype=dtype, mode="r")
        self.context = context

    def __len__(self) -> int:
        return self.tokens.size // self.context

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = i * self.context
        block = torch.from_numpy(self.tokens[start : start + self.context].astype(np.int64))
        return {"input_ids": block, "labels": block}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    manifest = json.loads((args.dataset / "manifest.json").read_text())
    config = GPT2Config(
        vocab_size=manifest["tokenizer"]["vocab_size"],
        n_positions=args.context,
        n_embd=args.width,
        n_layer=args.layers,
        n_head=args.width // 64,
    )
    trainer = Trainer(
        model=GPT2LMHeadModel(config),
        args=TrainingArguments(
            output_dir="/tmp/plain-trainer",
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=2e-3,
            report_to=[],
            save_strategy="no",
            logging_steps=args.steps,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
        ),
        train_dataset=Blocks(args.dataset / "train.bin", manifest["dtype"], args.context),
    )
    runtime = trainer.train().metrics["train_runtime"]
    print(f"plain Trainer: {args.steps * args.batch_size * args.context / runtime:,.0f} tokens/s")


if __name__ == "__main__":
    main()
