"""The Ray engine: the same `clean_block` over every block as Ray tasks, then near-duplicates
as a shuffle of keys, so that no process holds every signature.

1. clean: one task per input block (normalize → filter → PII → fingerprints); results stay
   in Ray's object store.
2. exact copies: content keys hash-partitioned over P reducers; each reports its keys held
   by more than one document. Only a key's first document goes on to step 3.
3. near copies: (band key, ordinal, signature) rows hash-partitioned by band key over P
   reducers; each compares the signatures within its buckets and reports the pairs whose
   estimated Jaccard similarity reaches the threshold.
4. The driver, which holds only the copies and confirmed pairs (a share of the duplicates,
   not of the corpus), walks the blocks in input order and decides: a document is dropped
   when an earlier kept one is an exact or confirmed near copy. That is the rule the local
   index applies document by document, so the output is byte-identical to `--engine local`.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import CleanedBlock, clean_block
from lmforge.data.dedup import Deduplicator, Fingerprints
from lmforge.data.document import Document
from lmforge.data.minhash import band_keys
from lmforge.errors import MissingDependencyError

log = logging.getLogger(__name__)


def start_ray(address: str, workers: int) -> Any:
    """Connect to `address` (or RAY_ADDRESS), else start a local Ray with `workers` CPUs."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError("--engine ray", "ray", "ray") from err
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS", "")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or None, include_dashboard=False, log_to_driver=False)
    return ray


def _partition(values: np.ndarray, parts: int) -> list[np.ndarray]:
    """Row indices per partition, by a 64-bit key."""
    owner = (values % np.uint64(parts)).astype(np.int64)
    return [np.flatnonzero(owner == p) for p in range(parts)]


def _key_parts(block: CleanedBlock, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    assert block.prints is not None
    keys = block.prints.keys
    ordinals = np.fromiter((d.ordinal for d in block.docs), np.int64, len(block.docs))
    return [(keys[rows], ordinals[rows]) for rows in _partition(keys[:, 0], parts)]


def _copies(*parts: tuple[np.ndarray, np.ndarray]) -> dict[int, int]:
    """{ordinal: ordinal of the first document with its content key} for every later copy."""
    keys = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, 2), np.uint64)
    ordinals = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    first: dict[tuple[int, int], int] = {}
    copies: dict[int, int] = {}
    for i in np.argsort(ordinals).tolist():
        key = (int(keys[i, 0]), int(keys[i, 1]))
        if key in first:
            copies[int(ordinals[i])] = first[key]
        else:
            first[key] = int(ordinals[i])
    return copies


def _band_parts(
    block: CleanedBlock, copies: dict[int, int], bands: int, rows: int, parts: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    assert block.prints is not None and block.prints.signatures is not None
    ordinals = np.fromiter((d.ordinal for d in block.docs), np.int64, len(block.docs))
    firsts = np.flatnonzero([o not in copies for o in ordinals.tolist()])
    signatures = block.prints.signatures[firsts]
    keys = band_keys(signatures, bands, rows).ravel()
    row_of = np.repeat(np.arange(len(firsts)), bands)
    out = []
    for chosen in _partition(keys, parts):
        mine = row_of[chosen]
        out.append((keys[chosen], ordinals[firsts][mine], signatures[mine]))
    return out


def _near_pairs(
    threshold: float, *parts: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> set[tuple[int, int]]:
    """(earlier, later) ordinals sharing a band key whose signatures agree on `threshold`."""
    keys = np.concatenate([p[0] for p in parts])
    ordinals = np.concatenate([p[1] for p in parts])
    signatures = np.concatenate([p[2] for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, ordinals, signatures = keys[order], ordinals[order], signatures[order]
    pairs: set[tuple[int, int]] = set()
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        for a in range(start, end - 1):
            for b in range(a + 1, end):
                if float(np.mean(signatures[a] == signatures[b])) >= threshold:
                    i, j = int(ordinals[a]), int(ordinals[b])
                    pairs.add((min(i, j), max(i, j)))
    return pairs


class ShuffledDecisions:
    """`Deduplicator.decide`'s answers from the shuffle's copies and confirmed pairs, counted
    on the same stats."""

    def __init__(
        self, dedup: Deduplicator, copies: dict[int, int], pairs: Iterable[tuple[int, int]]
    ) -> None:
        self.stats = dedup.stats
        self.copies = copies
        self.earlier: defaultdict[int, list[int]] = defaultdict(list)
        for i, j in pairs:
            self.earlier[j].append(i)
        self.kept: set[int] = set()
        self.matched: dict[int, int] = {}
        self.stats.details.update(index_documents=0, index_bytes=0, index_bytes_per_document=0)

    def decide(self, docs: Sequence[Document], prints: Fingerprints) -> list[bool]:
        keep = []
        for doc in docs:
            ordinal = doc.ordinal
            first = self.copies.get(ordinal)
            if first is not None and first in self.kept:
                self.stats.drop("exact_duplicate", doc)
                keep.append(False)
                continue
            match = self.matched.get(first) if first is not None else None
            if match is None:
                kept_before = [i for i in self.earlier.get(ordinal, ()) if i in self.kept]
                match = min(kept_before) if kept_before else None
            if match is not None:
                self.matched[ordinal] = match
                self.stats.drop(
                    "near_duplicate", doc, f"(near-copy of document #{match}) {doc.text}"
                )
                keep.append(False)
                continue
            self.kept.add(ordinal)
            keep.append(True)
        return keep


def ray_cleaned_blocks(
    cfg: PrepareConfig, blocks: Iterable[list[Document]], dedup: Deduplicator | None
) -> tuple[Iterator[CleanedBlock], ShuffledDecisions | None]:
    """Every block cleaned on Ray, and (with dedup) the decisions of the key shuffles; the
    blocks come back one at a time in input order."""
    ray = start_ray(cfg.ray_address, cfg.workers)
    clean = ray.remote(clean_block)
    done = [clean.remote(cfg, block, dedup is not None) for block in blocks]
    if dedup is None:
        return (ray.get(ref) for ref in done), None
    parts = max(2, int(ray.cluster_resources().get("CPU", 2)))
    key_parts = ray.remote(num_returns=parts)(_key_parts)
    by_block = [key_parts.remote(ref, parts) for ref in done]
    reduce_copies = ray.remote(_copies)
    found = ray.get([reduce_copies.remote(*(b[p] for b in by_block)) for p in range(parts)])
    copies = {k: v for part in found for k, v in part.items()}
    pairs: set[tuple[int, int]] = set()
    if dedup.near:
        copies_ref = ray.put(copies)
        band_parts = ray.remote(num_returns=parts)(_band_parts)
        by_block = [
            band_parts.remote(ref, copies_ref, dedup.bands, dedup.rows, parts) for ref in done
        ]
        near = ray.remote(_near_pairs)
        for part in ray.get(
            [near.remote(dedup.threshold, *(b[p] for b in by_block)) for p in range(parts)]
        ):
            pairs |= part
    log.info("ray: %d exact copies, %d confirmed near pairs", len(copies), len(pairs))
    return (ray.get(ref) for ref in done), ShuffledDecisions(dedup, copies, pairs)
