"""The rows of a task fine-tuning file: train and valid (a --valid-data file, or a seeded share
of --data), and the list-backed Dataset the Trainer reads the encoded rows from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config.train import TrainConfig
from lmforge.records import Record, read_records

VALID_FRACTION = 0.05


def split_off_valid(rows: list[Record], seed: int) -> tuple[list[Record], list[Record]]:
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = max(1, int(len(rows) * VALID_FRACTION))
    return [rows[i] for i in order[cut:]], [rows[i] for i in order[:cut]]


def task_rows(cfg: TrainConfig, fields: Sequence[str]) -> tuple[list[Record], list[Record]]:
    """(train, valid) rows with `fields`, read as --data-format and --header say."""

    def read(path: str) -> list[Record]:
        return read_records(Path(path), fields, fmt=cfg.data_format, header=cfg.header)

    rows = read(cfg.data)
    if cfg.valid_data:
        return rows, read(cfg.valid_data)
    return split_off_valid(rows, cfg.seed)


class ListDataset(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]
