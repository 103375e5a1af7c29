"""Stage 8: encode documents (`PackingEncoder`) and write flat token files with
`<|endoftext|>` after every document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.document import Document, batched
from lmforge.data.pretokens import PackingEncoder
from lmforge.data.tokenizer import end_of_text_id

BATCH = 1024


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def packing_encoder(tokenizer: Tokenizer) -> PackingEncoder:
    return PackingEncoder(
        tokenizer, end_of_text_id(tokenizer), token_dtype(tokenizer.get_vocab_size())
    )


def pack(
    documents: Iterable[Document],
    tokenizer: Tokenizer,
    out: Path,
    *,
    on_batch: Callable[[int], None] = lambda n: None,
) -> tuple[int, int, int]:
    """Encode `documents` into `out`; return (documents, tokens, words)."""
    encoder = packing_encoder(tokenizer)
    totals = [0, 0, 0]
    with open(out, "wb") as handle:
        for batch in batched(documents, BATCH):
            texts = [d.text for d in batch]
            flat = encoder.packed(texts)
            flat.tofile(handle)
            totals[0] += len(texts)
            totals[1] += int(flat.size)
            totals[2] += count_words(texts)
            on_batch(len(texts))
    return totals[0], totals[1], totals[2]


def count_words(texts: list[str]) -> int:
    """Whitespace-separated words plus one per document (its end)."""
    return sum(len(text.split()) + 1 for text in texts)
