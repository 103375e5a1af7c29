"""The tokenizer trained while the corpus is still being cleaned.

The train split's texts go to the `tokenizers` trainer as they are routed, through a bounded
queue, and the trainer counts words in its own threads beside the cleaning workers (which
leave cores idle while this process reads and runs the ordered stages); only its merges wait
for the last document. The trainer sees the texts the finished train spill would give it, in
the same order and up to the same character budget, so the tokenizer is the same.

The trainer starts with the first text, after the local engine has forked its workers: a
process forked once the `tokenizers` thread pool runs would have its parallelism disabled.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from lmforge.config.data import PrepareConfig

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Texts per queue item (the queue costs per item), and items queued at most: the memory the
# queue holds stays bounded when the trainer falls behind.
_BATCH = 512
_QUEUED = 32


class _Cancelled(Exception):
    """Raised inside the trainer's input when the run failed: the trainer stops."""


def train_tokenizer(cfg: PrepareConfig, texts: Iterable[str]) -> Tokenizer:
    from lmforge.data.tokenizer import train_bpe, train_char

    if cfg.char_level:
        return train_char(texts)
    return train_bpe(texts, cfg.vocab_size, cfg.min_frequency)


class BackgroundTraining:
    """`add` each train text in order, then `finish` for the tokenizer; `cancel` on failure.
    `budget` counts the documents and characters trained on (the manifest's `trained_on`)."""

    def __init__(self, cfg: PrepareConfig) -> None:
        self.budget = {"documents": 0, "chars": 0}
        self._max_chars = cfg.tokenizer_max_chars
        self._batch: list[str] = []
        self._queue: queue.Queue[list[str] | None] = queue.Queue(_QUEUED)
        self._cancelled = False
        self._tokenizer: Tokenizer | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._train, args=(cfg,), name="tokenizer-training", daemon=True
        )

    def add(self, text: str) -> None:
        """One more train text; past the character budget, texts are not trained on."""
        if self.budget["chars"] >= self._max_chars:
            return
        self.budget["documents"] += 1
        self.budget["chars"] += len(text)
        self._batch.append(text)
        if self._thread.ident is None:  # not started yet
            self._thread.start()
        if len(self._batch) >= _BATCH:
            self._put(self._batch)
            self._batch = []

    def finish(self) -> Tokenizer:
        """The tokenizer, once the trainer has seen every text added (at least one)."""
        self._put(self._batch)
        self._batch = []
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._tokenizer is not None
        return self._tokenizer

    def cancel(self) -> None:
        """Stop the trainer without waiting for it (the run failed; after `finish`, nothing)."""
        self._cancelled = True
        self._put(None)

    def _put(self, item: list[str] | None) -> None:
        # A trainer that failed no longer drains the queue: never block on it.
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _texts(self) -> Iterator[str]:
        while (batch := self._queue.get()) is not None:
            yield from batch
        if self._cancelled:
            raise _Cancelled

    def _train(self, cfg: PrepareConfig) -> None:
        try:
            self._tokenizer = train_tokenizer(cfg, self._texts())
        except _Cancelled:
            pass
        except BaseException as exc:  # handed to the caller of finish()
            self._error = exc


@contextlib.contextmanager
def training_alongside(cfg: PrepareConfig, train: bool) -> Iterator[BackgroundTraining | None]:
    """A `BackgroundTraining` when `train` (None when a tokenizer is reused), stopped if the
    run fails before `finish`."""
    training = BackgroundTraining(cfg) if train else None
    try:
        yield training
    finally:
        if training is not None:
            training.cancel()
