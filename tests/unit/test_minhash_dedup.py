"""The bulk MinHash and the band-key index against datasketch, on real text with planted copies."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.data.dedup import Deduplicator, fingerprints
from lmforge.data.document import Document, batched
from lmforge.data.keyindex import KeyIndex
from lmforge.data.minhash import MinHasher, lsh_bands, shingles

datasketch = pytest.importorskip("datasketch")


def _planted(lines: list[str]) -> list[Document]:
    """Long PTB lines, then exact copies, one-word-appended near-copies and one-word-changed
    ones (some under the 0.8 threshold), interleaved so copies land in other blocks."""
    base = [line for line in lines if len(line.split()) > 12][:400]
    texts = list(base)
    texts += base[10:30]
    texts += [line + " indeed" for line in base[40:80]]
    for line in base[100:140]:
        words = line.split()
        words[len(words) // 2] = "zebra"
        texts.append(" ".join(words))
    texts += [texts[-1], texts[-2]]
    return [Document(t, f"x:{i}", i) for i, t in enumerate(texts)]


def _datasketch_kept(docs: list[Document], threshold: float, seed: int) -> list[int]:
    """The reference: the per-document datasketch LSH the bulk path replaced."""
    lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=128, weights=(0.1, 0.9))
    seen: set[str] = set()
    signatures: dict[int, np.ndarray] = {}
    kept = []
    for doc in docs:
        if doc.text in seen:
            continue
        sig = datasketch.MinHash(num_perm=128, seed=seed)
        sig.update_batch(list(shingles(doc.text, 5)))
        values = sig.hashvalues.astype(np.uint32)
        near = [k for k in lsh.query(sig) if np.mean(signatures[k] == values) >= threshold]
        if near:
            continue
        lsh.insert(doc.ordinal, sig)
        signatures[doc.ordinal] = values
        seen.add(doc.text)
        kept.append(doc.ordinal)
    return kept


def test_signatures_and_bands_are_datasketchs(ptb_lines: list[str]) -> None:
    texts = [*ptb_lines[:300], "", "!!!", "two words"]
    ours = MinHasher(128, 42, 5).signatures(texts)
    for text, row in zip(texts, ours, strict=True):
        ref = datasketch.MinHash(num_perm=128, seed=42)
        if grams := shingles(text, 5):
            ref.update_batch(list(grams))
        assert (ref.hashvalues.astype(np.uint32) == row).all(), text
    for threshold in (0.5, 0.7, 0.8, 0.9):
        lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=128, weights=(0.1, 0.9))
        assert lsh_bands(threshold, 128) == (lsh.b, lsh.r)


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_planted_copies_match_datasketch_whatever_the_block(
    ptb_lines: list[str], block: int
) -> None:
    """Same kept documents as the reference, exactly (tolerance 0: same signatures, same
    bands; a 64-bit band-key collision could only add a candidate, then rejected)."""
    docs = _planted(ptb_lines)
    dedup = Deduplicator(near=True, threshold=0.8, shingle_words=5, num_perm=128, seed=3)
    kept = []
    for chunk in batched(docs, block):
        decisions = dedup.decide(chunk, fingerprints([d.text for d in chunk], dedup.hasher))
        kept += [d.ordinal for d, keep in zip(chunk, decisions, strict=True) if keep]
    assert kept == _datasketch_kept(docs, 0.8, 3)
    removed = dedup.stats.removed
    assert removed["exact_duplicate"] == 22 and removed["near_duplicate"] >= 40
    details = dedup.stats.details
    assert details["index_documents"] == len(kept)
    assert details["index_bytes_per_document"] <= 300


def test_key_index_returns_every_value_of_a_repeated_key() -> None:
    index = KeyIndex()
    for start in range(0, 100, 10):
        keys = np.arange(start, start + 10, dtype=np.uint64) % np.uint64(7)
        index.add(keys, np.arange(start, start + 10))
    positions, values = index.lookup(np.array([3, 99, 5], dtype=np.uint64))
    assert sorted(values[positions == 0].tolist()) == [v for v in range(100) if v % 7 == 3]
    assert not (positions == 1).any()
    assert sorted(values[positions == 2].tolist()) == [v for v in range(100) if v % 7 == 5]
    assert len(index) == 100 and index.nbytes == 1200
