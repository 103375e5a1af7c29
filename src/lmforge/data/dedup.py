"""Stage 4: exact (content hash) and near-duplicate (MinHash + LSH) removal.

The first occurrence wins. Near-duplicates use `datasketch` over word shingles. The LSH bands
are tuned for recall (few missed near-copies), and every candidate it proposes is confirmed by
comparing full signatures, so precision does not suffer. The index holds a 16-byte key, the
LSH band entries and one signature per kept document: its memory grows with the number of
unique documents (reported in the manifest), not with the corpus size in bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import numpy as np

from lmforge.data.document import Document, StageStats

if TYPE_CHECKING:
    from datasketch import MinHash  # untyped: only named here for the reader

_WORD = re.compile(r"\w+")


def content_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def shingles(text: str, size: int) -> set[bytes]:
    """Lower-cased word n-grams; a document shorter than `size` words is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


class Deduplicator:
    """Drops exact copies and, with `near=True`, documents whose estimated Jaccard similarity
    to a kept document reaches `threshold`."""

    def __init__(
        self, *, near: bool, threshold: float, shingle_words: int, num_perm: int, seed: int
    ) -> None:
        self.near = near
        self.shingle_words = shingle_words
        self.seen: set[bytes] = set()
        self.stats = StageStats("dedup")
        self._kept = 0
        if near:
            from datasketch import MinHash, MinHashLSH

            self._minhash = MinHash
            self._template = MinHash(num_perm=num_perm, seed=seed)
            # Weights favour recall: LSH only proposes candidates, signatures decide.
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
            self.threshold = threshold
            self.signatures = np.empty((1024, num_perm), dtype=np.uint32)
            self.stats.details["lsh_bands"] = self.lsh.b
            self.stats.details["lsh_rows"] = self.lsh.r

    def _signature(self, text: str) -> MinHash:
        sig = self._minhash(
            num_perm=self._template.num_perm,
            seed=self._template.seed,
            permutations=self._template.permutations,
            scheme=self._template.scheme,
        )
        grams = shingles(text, self.shingle_words)
        if grams:
            sig.update_batch(list(grams))
        return sig

    def __call__(self, doc: Document) -> Document | None:
        key = content_key(doc.text)
        if key in self.seen:
            self.stats.drop("exact_duplicate", doc)
            return None
        if self.near:
            sig = self._signature(doc.text)
            values = sig.hashvalues.astype(np.uint32)
            if (match := self._confirmed_match(self.lsh.query(sig), values)) is not None:
                self.stats.drop(
                    "near_duplicate", doc, f"(near-copy of document #{match}) {doc.text}"
                )
                return None
            self._store(doc.ordinal, sig, values)
        self.seen.add(key)
        self._kept += 1
        self._report_index()
        return doc

    def _confirmed_match(self, candidates: list[tuple[int, int]], values: np.ndarray) -> int | None:
        """The earliest candidate whose estimated Jaccard similarity reaches the threshold."""
        best = None
        for row, ordinal in candidates:
            similarity = float(np.mean(self.signatures[row] == values))
            if similarity >= self.threshold and (best is None or ordinal < best):
                best = ordinal
        return best

    def _store(self, ordinal: int, sig: MinHash, values: np.ndarray) -> None:
        row = self._kept
        if row == len(self.signatures):
            self.signatures = np.resize(self.signatures, (2 * row, self.signatures.shape[1]))
        self.signatures[row] = values
        self.lsh.insert((row, ordinal), sig, check_duplication=False)

    def _report_index(self) -> None:
        # Bytes are an estimate of what is held per kept document: a 16-byte key in a set,
        # and with LSH one hashed band key per band plus the signature row (4 bytes a hash).
        per_doc = 90 + (self.lsh.b * 120 + self.signatures.shape[1] * 4 if self.near else 0)
        self.stats.details["index_documents"] = self._kept
        self.stats.details["index_bytes_estimate"] = self._kept * per_doc
