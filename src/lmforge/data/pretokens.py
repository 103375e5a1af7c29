"""Packing encoder: byte-level BPE ids of many documents, pretoken by pretoken from a cache.

A byte-level BPE tokenizer (GPT-2's, and the one `data prepare` trains) splits text into
pretokens with one regular expression, then merges each pretoken on its own, so a text's ids
are its pretokens' ids in turn. The `tokenizers` pretokenizer is most of its encoding time
(two thirds on PTB); in a corpus few pretokens are new, so for text of printable ASCII this
splits with the same expression in Python's `re` (on that alphabet `\\p{L}` is [A-Za-z],
`\\p{N}` is [0-9] and `\\s` is the space) and looks each pretoken up, asking the tokenizer
only for pretokens it has not seen. Any other text (non-ASCII, tabs, an added token such as
`<|endoftext|>` written out), and any tokenizer of another kind, goes to the tokenizer whole:
the ids are always the tokenizer's own.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

# GPT-2's pattern (tokenizers' ByteLevel) with its classes written out for printable ASCII.
_PRETOKEN = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^ A-Za-z0-9]+| +(?![^ ])| +"
)
_NOT_PRINTABLE_ASCII = re.compile(r"[^ -~]")
# Bounds the cache's memory on a corpus of many distinct pretokens (numbers, names): past
# it the cache starts again, which costs time, never correctness.
MAX_CACHED = 1 << 20


def splits_like_gpt2(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is a BPE behind exactly the GPT-2 byte-level pretokenizer and no
    normalizer: the tokenizers whose ids the cache may give."""
    config = json.loads(tokenizer.to_str())
    pre = config.get("pre_tokenizer") or {}
    model = config.get("model") or {}
    return (
        config.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True) is True
        and pre.get("add_prefix_space") is False
        and model.get("type") == "BPE"
        and model.get("dropout") is None
    )


class PackingEncoder:
    """`packed(texts)`: the texts' ids, each text's followed by `end_of_text`, as `dtype`."""

    def __init__(self, tokenizer: Tokenizer, end_of_text: int, dtype: np.dtype) -> None:
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.cached = splits_like_gpt2(tokenizer)
        self.added = [token.content for token in tokenizer.get_added_tokens_decoder().values()]
        self._end = [end_of_text]
        self._ids: dict[str, list[int]] = {}

    def packed(self, texts: Sequence[str]) -> np.ndarray:
        split = [self._pretokens(text) for text in texts]
        whole = [text for text, pieces in zip(texts, split, strict=True) if pieces is None]
        by_tokenizer = iter(self._encode(whole))
        self._learn(split)
        lookup = self._ids.__getitem__
        runs: list[list[int]] = []
        for pieces in split:
            if pieces is None:
                runs.append(next(by_tokenizer))
            else:
                runs.extend(map(lookup, pieces))
            runs.append(self._end)
        total = sum(map(len, runs))
        return np.fromiter(itertools.chain.from_iterable(runs), dtype=self.dtype, count=total)

    def _pretokens(self, text: str) -> list[str] | None:
        """The text's pretokens, or None where the tokenizer must encode it whole."""
        if not self.cached or _NOT_PRINTABLE_ASCII.search(text) is not None:
            return None
        if any(token in text for token in self.added):
            return None
        return _PRETOKEN.findall(text)

    def _learn(self, split: list[list[str] | None]) -> None:
        """Cache the ids of every pretoken of `split` not yet cached."""
        batch = set(itertools.chain.from_iterable(p for p in split if p is not None))
        new = batch.difference(self._ids)
        if not new:
            return
        if len(self._ids) + len(new) > MAX_CACHED:
            self._ids.clear()
            new = batch
        pieces = list(new)
        self._ids.update(zip(pieces, self._encode(pieces), strict=True))

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
