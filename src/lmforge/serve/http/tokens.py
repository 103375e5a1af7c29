"""Text to token ids for the routes: bounded by what the model can use, and encoded off the
event loop. A text is cut to `char_bound` characters before it is encoded: no token of the
vocabulary is longer than its longest entry, so a text longer than `longest × (context + 1)`
characters has more tokens than the context holds, and the cut never changes a text that
fits. One request's texts are encoded in one `encode_batch` call on a worker thread (the
tokenizer releases the GIL there), so a large body never stalls other requests or probes;
short texts are encoded on the loop, where they take less time than the hop to a thread."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from enum import Enum

from lmforge.serve.engine import Engine

# Below this many characters in all, encoding (tens of µs) is cheaper than a worker thread's
# round trip, which under load also waits for the GIL behind the engine thread.
INLINE_CHARS = 4096
_longest: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


class Keep(Enum):
    """Which part of a text too long for the context a route keeps."""

    HEAD = "head"  # generation and summaries: the beginning
    TAIL = "tail"  # classification: the end, next to the label


def longest_token_chars(engine: Engine) -> int:
    """Characters of the vocabulary's longest token, added tokens included (a byte-level
    entry spells one byte per character, so it bounds the characters it decodes to)."""
    if engine not in _longest:
        vocab = engine.tokenizer.get_vocab(with_added_tokens=True)
        _longest[engine] = max(map(len, vocab), default=1)
    return _longest[engine]


def char_bound(engine: Engine) -> int:
    """More characters than this cannot fit in the context, whatever the text."""
    return longest_token_chars(engine) * (engine.max_seq_len + 1)


def cut(text: str, bound: int, keep: Keep) -> str:
    """`text` cut to `bound` characters, keeping its `keep` part."""
    if len(text) <= bound:
        return text
    return text[:bound] if keep is Keep.HEAD else text[-bound:]


async def encode(engine: Engine, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, from one batch encode (on a worker thread unless short)."""
    if not texts:
        return []
    if sum(map(len, texts)) <= INLINE_CHARS:
        encodings = engine.tokenizer.encode_batch(list(texts))
    else:
        encodings = await asyncio.to_thread(engine.tokenizer.encode_batch, list(texts))
    return [list(encoding.ids) for encoding in encodings]
