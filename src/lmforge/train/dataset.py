"""torch Datasets over the packed `.bin` token files of a dataset dir (memory-mapped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lmforge.errors import DataError
from lmforge.hf import IGNORE


class PackedTokens(Dataset[dict[str, torch.Tensor]]):
    """Windows of `context_length` tokens over a flat token file.

    - `random`: every epoch, window i starts at a fresh seeded offset (set_epoch);
    - `sequential`: block i covers tokens [i·L, (i+1)·L);
    - `eval`: blocks overlap by one token, so every token after the first is predicted exactly
      once; the last block is padded with ignored labels. Sums of per-token losses are then
      exact, which word-level perplexity needs.
    """

    def __init__(
        self,
        path: Path,
        dtype: str,
        context_length: int,
        *,
        mode: str = "sequential",
        seed: int = 0,
        pad_id: int = 0,
        limit: int | None = None,
    ) -> None:
        self.path = path
        self.tokens = np.memmap(path, dtype=dtype, mode="r")
        self.length = context_length
        self.mode = mode
        self.seed = seed
        self.pad_id = pad_id
        self.epoch = 0
        total = int(self.tokens.size)
        if total < 2:
            raise DataError(f"{path} holds {total} tokens: too few to train or evaluate on")
        if mode == "eval":
            count = max(1, -(-(total - 1) // (context_length - 1)))
        else:
            count = total // context_length
            if count == 0:
                raise DataError(
                    f"{path} holds {total} tokens, fewer than one window of {context_length}",
                    hint="use a smaller --context-length or more data",
                )
        self.count = min(count, limit) if limit else count

    def __len__(self) -> int:
        return self.count

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        length = self.length
        if self.mode == "random":
            rng = np.random.default_rng((self.seed, self.epoch, index))
            start = int(rng.integers(0, self.tokens.size - length + 1))
        elif self.mode == "sequential":
            start = index * length
        else:
            start = index * (length - 1)
        window = torch.from_numpy(self.tokens[start : start + length].astype(np.int64))
        labels = window.clone()
        # The first token is never a target (the model shifts labels by one). Marking it
        # ignored keeps the Trainer's token count, and so its logged loss, exact: it divides
        # by the labels that are not ignored, before the shift.
        labels[0] = IGNORE
        if window.numel() < length:
            pad = length - window.numel()
            window = torch.cat([window, torch.full((pad,), self.pad_id, dtype=torch.long)])
            labels = torch.cat([labels, torch.full((pad,), IGNORE, dtype=torch.long)])
        return {"input_ids": window, "labels": labels}
