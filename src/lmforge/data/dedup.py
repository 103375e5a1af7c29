"""Stage 4: exact (content hash) and near-duplicate (MinHash + LSH) removal.

The first occurrence wins. Work splits in two so that it can run over blocks of documents
in parallel: `fingerprints` (a content key and, for near-duplicates, a MinHash signature per
document; the expensive part, no state) and `Deduplicator.decide` (in document order: is
this document a copy of one kept before it?).

The index holds what a kept document needs to be found again, 12 bytes a key and value in
numpy arrays (`KeyIndex`): a 96-bit content key, and one 64-bit key per LSH band. The LSH
bands are tuned for recall (few missed near-copies), and every candidate they propose is
confirmed by comparing full signatures, so precision does not suffer; those signatures wait
on disk (a scratch file), read back only for candidates. The decisions are the ones a
`datasketch` MinHashLSH over the same signatures makes (see `lmforge.data.minhash`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmforge.data.document import Document, StageStats
from lmforge.data.keyindex import KeyIndex
from lmforge.data.minhash import MinHasher, band_keys, lsh_bands, shingles

__all__ = ["Deduplicator", "Fingerprints", "content_key", "fingerprints", "shingles"]


def content_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class Fingerprints:
    """Per document of a block: `keys` (n, 2) uint64 content key halves; `signatures`
    (n, num_perm) uint32, or None without near-duplicate detection."""

    keys: np.ndarray
    signatures: np.ndarray | None


def fingerprints(texts: Sequence[str], hasher: MinHasher | None) -> Fingerprints:
    raw = b"".join(content_key(text) for text in texts)
    keys = np.frombuffer(raw, dtype="<u8").reshape(len(texts), 2).copy()
    return Fingerprints(keys, hasher.signatures(texts) if hasher is not None else None)


class _SignatureFile:
    """Kept documents' signatures and ordinals, one fixed-size record per index row."""

    def __init__(self, num_perm: int) -> None:
        self.record = np.dtype([("sig", "<u4", (num_perm,)), ("ordinal", "<i8")])
        self._file = tempfile.TemporaryFile(prefix="lmforge-signatures-")
        self.rows = 0

    def append(self, signatures: np.ndarray, ordinals: np.ndarray) -> None:
        records = np.empty(len(ordinals), dtype=self.record)
        records["sig"], records["ordinal"] = signatures, ordinals
        self._file.seek(0, os.SEEK_END)
        self._file.write(records.tobytes())
        self._file.flush()
        self.rows += len(ordinals)

    def read(self, row: int) -> tuple[np.ndarray, int]:
        size = self.record.itemsize
        data = os.pread(self._file.fileno(), size, row * size)
        record = np.frombuffer(data, dtype=self.record)[0]
        return record["sig"], int(record["ordinal"])


class Deduplicator:
    """Drops exact copies and, with `near=True`, documents whose estimated Jaccard similarity
    to a kept document reaches `threshold`."""

    def __init__(
        self, *, near: bool, threshold: float, shingle_words: int, num_perm: int, seed: int
    ) -> None:
        self.near = near
        self.threshold = threshold
        self.stats = StageStats("dedup")
        self.exact = KeyIndex()
        self.kept = 0
        self.hasher = MinHasher(num_perm, seed, shingle_words) if near else None
        if near:
            self.bands, self.rows = lsh_bands(threshold, num_perm)
            self.band_index = KeyIndex()
            self.signature_file = _SignatureFile(num_perm)
            self.stats.details["lsh_bands"] = self.bands
            self.stats.details["lsh_rows"] = self.rows
        self._report_index()

    def __call__(self, doc: Document) -> Document | None:
        prints = fingerprints([doc.text], self.hasher)
        return doc if self.decide([doc], prints)[0] else None

    def decide(self, docs: Sequence[Document], prints: Fingerprints) -> list[bool]:
        """Keep or drop each document of a block, in order, against the index and the earlier
        documents of the block; counts the drops and adds the kept ones to the index."""
        hi, lo = prints.keys[:, 0], prints.keys[:, 1] & np.uint64(0xFFFFFFFF)
        positions, values = self.exact.lookup(hi)
        seen_before = set(positions[values == lo[positions]].tolist())
        block_keys = [(int(h), int(v)) for h, v in zip(hi.tolist(), lo.tolist(), strict=True)]
        # An exact copy of an earlier document of the block shares its fate; only each
        # key's first occurrence is grouped by band (a block of copies stays linear).
        first_of: dict[tuple[int, int], int] = {}
        for i, key in enumerate(block_keys):
            first_of.setdefault(key, i)
        firsts = np.fromiter(sorted(set(first_of.values())), np.int64)
        candidates: dict[int, list[int]] = {}
        partners: dict[int, set[int]] = {}
        if self.near:
            assert prints.signatures is not None
            every = band_keys(prints.signatures, self.bands, self.rows)
            bands = every[firsts]
            candidates = _remap(self._indexed_candidates(bands), firsts)
            partners = {
                int(firsts[d]): {int(firsts[e]) for e in earlier}
                for d, earlier in _partners_in_block(bands).items()
            }
        else:
            every = np.empty((len(docs), 0), dtype=np.uint64)
        keep = [False] * len(docs)
        matched: dict[int, int] = {}
        for i, doc in enumerate(docs):
            first = first_of[block_keys[i]]
            if i in seen_before or (first < i and keep[first]):
                self.stats.drop("exact_duplicate", doc)
                continue
            match = matched.get(first) if first < i else None
            if match is None and self.near and (i in candidates or i in partners):
                match = self._confirmed_match(
                    i, docs, prints.signatures, keep, candidates, partners
                )
            if match is not None:
                matched[i] = match
                self.stats.drop(
                    "near_duplicate", doc, f"(near-copy of document #{match}) {doc.text}"
                )
                continue
            keep[i] = True
        self._insert(docs, prints, keep, hi, lo, every)
        return keep

    def _indexed_candidates(self, bands: np.ndarray) -> dict[int, list[int]]:
        positions, rows = self.band_index.lookup(bands.ravel())
        found: defaultdict[int, list[int]] = defaultdict(list)
        for doc, row in zip((positions // self.bands).tolist(), rows.tolist(), strict=True):
            found[doc].append(row)
        return found

    def _confirmed_match(
        self,
        i: int,
        docs: Sequence[Document],
        signatures: np.ndarray | None,
        keep: list[bool],
        candidates: dict[int, list[int]],
        partners: dict[int, set[int]],
    ) -> int | None:
        """The earliest kept candidate whose estimated Jaccard similarity reaches the
        threshold: candidates from the index, then kept earlier documents of the block."""
        assert signatures is not None
        values = signatures[i]
        best: int | None = None
        for row in sorted(set(candidates.get(i, ()))):
            stored, ordinal = self.signature_file.read(row)
            if float(np.mean(stored == values)) >= self.threshold:
                best = ordinal if best is None else min(best, ordinal)
        for j in partners.get(i, ()):
            if keep[j] and float(np.mean(signatures[j] == values)) >= self.threshold:
                ordinal = docs[j].ordinal
                best = ordinal if best is None else min(best, ordinal)
        return best

    def _insert(
        self,
        docs: Sequence[Document],
        prints: Fingerprints,
        keep: list[bool],
        hi: np.ndarray,
        lo: np.ndarray,
        bands: np.ndarray,
    ) -> None:
        kept = np.flatnonzero(np.asarray(keep, dtype=bool))
        self.exact.add(hi[kept], lo[kept])
        if self.near and len(kept):
            assert prints.signatures is not None
            rows = np.arange(self.kept, self.kept + len(kept))
            self.band_index.add(bands[kept].ravel(), np.repeat(rows, self.bands))
            ordinals = np.fromiter((docs[k].ordinal for k in kept.tolist()), np.int64, len(kept))
            self.signature_file.append(prints.signatures[kept], ordinals)
        self.kept += len(kept)
        self._report_index()

    def _report_index(self) -> None:
        """What the index holds in memory (the signatures stay on disk)."""
        held = self.exact.nbytes + (self.band_index.nbytes if self.near else 0)
        self.stats.details["index_documents"] = self.kept
        self.stats.details["index_bytes"] = held
        self.stats.details["index_bytes_per_document"] = round(held / self.kept) if self.kept else 0


def _remap(found: dict[int, list[int]], rows: np.ndarray) -> dict[int, list[int]]:
    return {int(rows[doc]): values for doc, values in found.items()}


def _partners_in_block(bands: np.ndarray) -> dict[int, set[int]]:
    """For each document of a block sharing a band key with an earlier one: those earlier
    ones. Sorting the flattened keys groups equal ones; most documents share none."""
    flat = bands.ravel()
    order = np.argsort(flat)
    ordered = flat[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    partners: defaultdict[int, set[int]] = defaultdict(set)
    if len(same) == 0:
        return partners
    width = bands.shape[1]
    # Runs of equal keys: their start positions in `ordered`.
    starts = same[np.r_[True, same[1:] != same[:-1] + 1]]
    for start in starts.tolist():
        end = start + 1
        while end < len(ordered) and ordered[end] == ordered[start]:
            end += 1
        docs = sorted({int(p) // width for p in order[start:end]})
        for n, doc in enumerate(docs[1:], start=1):
            partners[doc].update(docs[:n])
    return partners
