"""Stage 8: encode documents in parallel (the tokenizer's Rust thread pool) and write flat
token files with `<|endoftext|>` after every document."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tokenizers import Encoding, Tokenizer

from lmforge.data.document import Document, batched
from lmforge.data.tokenizer import end_of_text_id

BATCH = 1024


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def pack(
    documents: Iterable[Document],
    tokenizer: Tokenizer,
    out: Path,
    *,
    on_batch: Callable[[int], None] = lambda n: None,
) -> tuple[int, int, int]:
    """Encode `documents` into `out`; return (documents, tokens, words).

    A batch is encoded in a thread (the tokenizer's threads run without the GIL) while this
    one reads the next batch and writes the one before: the tokenizer never waits on them."""
    eot = end_of_text_id(tokenizer)
    dtype = token_dtype(tokenizer.get_vocab_size())
    totals = [0, 0, 0]

    def write(texts: list[str], encoded: Future[list[Encoding]], handle: BinaryIO) -> None:
        flat = packed(encoded.result(), eot, dtype)
        flat.tofile(handle)
        totals[0] += len(texts)
        totals[1] += int(flat.size)
        totals[2] += count_words(texts)
        on_batch(len(texts))

    with open(out, "wb") as handle, ThreadPoolExecutor(1) as encoder:
        ahead: deque[tuple[list[str], Future[list[Encoding]]]] = deque()
        for batch in batched(documents, BATCH):
            texts = [d.text for d in batch]
            ahead.append((texts, encoder.submit(tokenizer.encode_batch_fast, texts, False)))
            if len(ahead) > 1:
                write(*ahead.popleft(), handle)
        while ahead:
            write(*ahead.popleft(), handle)
    return totals[0], totals[1], totals[2]


def count_words(texts: list[str]) -> int:
    """Whitespace-separated words plus one per document (its end)."""
    return sum(len(text.split()) + 1 for text in texts)


def encode_packed(texts: list[str], tokenizer: Tokenizer, eot: int, dtype: np.dtype) -> np.ndarray:
    """The texts' ids, each followed by `eot`: a packed file is these arrays concatenated,
    however the documents were batched."""
    # encode_batch_fast: the ids without offsets, which packing never reads.
    return packed(tokenizer.encode_batch_fast(texts, add_special_tokens=False), eot, dtype)


def packed(encodings: list[Encoding], eot: int, dtype: np.dtype) -> np.ndarray:
    """The encodings' ids, each followed by `eot`."""
    ids = [enc.ids for enc in encodings]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.full(int(lengths.sum()) + len(ids), eot, dtype=dtype)
    # Each document's ids, then one end-of-text slot (prefilled with eot).
    starts = np.cumsum(lengths + 1) - lengths - 1
    body = (
        np.repeat(starts, lengths)
        + np.arange(int(lengths.sum()))
        - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    flat[body] = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype)
    return flat
