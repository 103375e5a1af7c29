"""The map and reduce sides of the Ray engine's key shuffles, as plain numpy functions over
one block or one partition (Ray runs them as tasks; nothing here imports Ray).

Rows are small on purpose: an exact row is a content key and an ordinal (24 bytes), a band
row a band key and an ordinal (16 bytes). Signatures never travel with the band rows
(128 permutations would make each of the 14 rows 512 bytes more): a reducer proposes the
pairs that share a bucket, and `confirmed_pairs` compares their signatures afterwards, for
the few documents that have a candidate at all.
"""

from __future__ import annotations

import numpy as np

from lmforge.data.blocks import CleanedBlock
from lmforge.data.minhash import band_keys

ExactRows = tuple[np.ndarray, np.ndarray]  # (n, 2) uint64 content keys, (n,) int64 ordinals
BandRows = tuple[np.ndarray, np.ndarray]  # (n,) uint64 band keys, (n,) int64 ordinals
Signed = tuple[np.ndarray, np.ndarray]  # (n,) increasing int64 ordinals, (n, perm) uint32


def _owners(values: np.ndarray, parts: int) -> list[np.ndarray]:
    """Row indices per partition, by a 64-bit key (a hash already: its residue is uniform)."""
    owner = (values % np.uint64(parts)).astype(np.int64)
    return [np.flatnonzero(owner == p) for p in range(parts)]


def block_ordinals(block: CleanedBlock) -> np.ndarray:
    return np.fromiter((d.ordinal for d in block.docs), np.int64, len(block.docs))


def exact_rows(block: CleanedBlock, parts: int) -> list[ExactRows]:
    assert block.prints is not None
    keys, ordinals = block.prints.keys, block_ordinals(block)
    return [(keys[rows], ordinals[rows]) for rows in _owners(keys[:, 0], parts)]


def band_rows(block: CleanedBlock, bands: int, rows: int, parts: int) -> list[BandRows]:
    """Every document's band keys, partitioned by key; later exact copies are dropped by the
    reducer, which knows them (they are not known yet when a block is cleaned)."""
    assert block.prints is not None and block.prints.signatures is not None
    keys = band_keys(block.prints.signatures, bands, rows).ravel()
    ordinals = np.repeat(block_ordinals(block), bands)
    return [(keys[chosen], ordinals[chosen]) for chosen in _owners(keys, parts)]


def copies(*parts: ExactRows) -> dict[int, int]:
    """{ordinal: ordinal of the first document with its content key} for every later copy.
    The key compared is the one the local index stores (64 bits and 32 more), so both
    engines call the same documents copies."""
    keys = np.concatenate([p[0] for p in parts])
    ordinals = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ordinals, keys[:, 1] & np.uint64(0xFFFFFFFF), keys[:, 0]))
    hi, lo = keys[order, 0], keys[order, 1] & np.uint64(0xFFFFFFFF)
    ordinals = ordinals[order]
    same = np.r_[False, (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])]
    # Each row's group start: the first (smallest) ordinal of its key.
    starts = np.maximum.accumulate(np.where(same, 0, np.arange(len(same))))
    later = np.flatnonzero(same)
    return dict(zip(ordinals[later].tolist(), ordinals[starts[later]].tolist(), strict=True))


def candidate_pairs(skipped: np.ndarray, *parts: BandRows) -> np.ndarray:
    """(earlier, later) ordinals that share a band bucket, among documents not in `skipped`
    (sorted ordinals of later exact copies: they share their first's fate). Shape (n, 2)."""
    keys = np.concatenate([p[0] for p in parts])
    ordinals = np.concatenate([p[1] for p in parts])
    mine = ~np.isin(ordinals, skipped, assume_unique=False)
    keys, ordinals = keys[mine], ordinals[mine]
    order = np.lexsort((ordinals, keys))
    keys, ordinals = keys[order], ordinals[order]
    shared = np.flatnonzero(keys[1:] == keys[:-1])
    if len(shared) == 0:
        return np.empty((0, 2), np.int64)
    # Runs of equal keys of length >= 2: most buckets hold one document and cost nothing.
    run_starts = shared[np.r_[True, shared[1:] != shared[:-1] + 1]]
    pairs: list[tuple[int, int]] = []
    for start in run_starts.tolist():
        end = start + 1
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        members = ordinals[start:end].tolist()
        pairs += [(a, b) for n, b in enumerate(members) for a in members[:n] if a != b]
    return np.unique(np.asarray(pairs, np.int64).reshape(-1, 2), axis=0)


def signed(block: CleanedBlock) -> Signed:
    assert block.prints is not None and block.prints.signatures is not None
    return block_ordinals(block), block.prints.signatures


def confirmed_pairs(threshold: float, pairs: np.ndarray, *blocks: Signed) -> np.ndarray:
    """The candidate pairs whose signatures agree on at least `threshold` of their positions
    (the estimate of their Jaccard similarity), given the blocks holding their documents."""
    ordinals = np.concatenate([b[0] for b in blocks])
    signatures = np.concatenate([b[1] for b in blocks])
    order = np.argsort(ordinals)
    rows = order[np.searchsorted(ordinals[order], pairs)]
    agree = np.mean(signatures[rows[:, 0]] == signatures[rows[:, 1]], axis=1)
    confirmed: np.ndarray = pairs[agree >= threshold]
    return confirmed
