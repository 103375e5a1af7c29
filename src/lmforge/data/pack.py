"""Stage 8: encode documents in parallel (the tokenizer's Rust thread pool) and write flat
token files with `<|endoftext|>` after every document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

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
    """Encode `documents` into `out`; return (documents, tokens, words)."""
    eot = end_of_text_id(tokenizer)
    dtype = token_dtype(tokenizer.get_vocab_size())
    docs = tokens = words = 0
    with open(out, "wb") as handle:
        for batch in batched(documents, BATCH):
            encodings = tokenizer.encode_batch([d.text for d in batch], add_special_tokens=False)
            flat = np.fromiter((i for enc in encodings for i in (*enc.ids, eot)), dtype=dtype)
            flat.tofile(handle)
            docs += len(batch)
            tokens += int(flat.size)
            words += sum(len(d.text.split()) + 1 for d in batch)
            on_batch(len(batch))
    return docs, tokens, words
