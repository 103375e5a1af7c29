"""Encode and pack the splits as Ray tasks: the driver reads each split's spill in chunks,
the tasks encode them anywhere in the cluster, and the driver appends the token arrays in
chunk order. A packed file is the documents' ids each followed by `<|endoftext|>`, whatever
the chunking, so the files are byte-identical to the local engine's `pack`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.pack import count_words, packing_encoder
from lmforge.data.pretokens import PackingEncoder
from lmforge.data.spill import SpillWriter, read_spill
from lmforge.progress import progress_bar

# Documents per encode task: large enough to amortise a task's overhead and the tokenizer's
# thread start, small enough that a few chunks in flight are a few MB of text.
CHUNK_DOCS = 8192
_IN_FLIGHT_PER_CPU = 2


@lru_cache(maxsize=2)
def _encoder(serialized: str) -> PackingEncoder:
    """One parse per worker process (a task hands the tokenizer over as its JSON), whose
    pretoken cache serves every chunk the process encodes."""
    return packing_encoder(Tokenizer.from_str(serialized))


def _encode(serialized: str, texts: list[str]) -> tuple[np.ndarray, int]:
    return _encoder(serialized).packed(texts), count_words(texts)


def _chunks(spill: Path) -> Iterator[list[str]]:
    chunk: list[str] = []
    for doc in read_spill(spill):
        chunk.append(doc.text)
        if len(chunk) == CHUNK_DOCS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ray_pack_splits(
    ray: Any, spills: dict[str, SpillWriter], tokenizer: Tokenizer, out: Path
) -> dict[str, tuple[int, int, int]]:
    """{split: (documents, tokens, words)}, each split written to `out/NAME.bin`."""
    encode = ray.remote(_encode)
    serialized = ray.put(tokenizer.to_str())
    limit = _IN_FLIGHT_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
    counts: dict[str, tuple[int, int, int]] = {}
    total_docs = sum(spill.count for spill in spills.values())
    with progress_bar("encode + pack", total_docs, "docs") as bar:
        for name, spill in spills.items():
            tokens = words = 0
            pending: deque[tuple[Any, int]] = deque()
            with open(out / f"{name}.bin", "wb") as handle:
                for chunk in chain(_chunks(spill.path), [None]):
                    if chunk is not None:
                        pending.append((encode.remote(serialized, chunk), len(chunk)))
                    # At most `limit` chunks wait; after the last one, every chunk is written.
                    while pending and (chunk is None or len(pending) > limit):
                        ref, size = pending.popleft()
                        flat, chunk_words = ray.get(ref)
                        flat.tofile(handle)
                        tokens += int(flat.size)
                        words += chunk_words
                        bar.advance(size)
            counts[name] = (spill.count, tokens, words)
    return counts
