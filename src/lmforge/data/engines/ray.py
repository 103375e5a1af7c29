"""The Ray engine: the same `clean_block` over every block as Ray tasks, then near-duplicates
as a shuffle of keys, so that no process holds every signature.

1. clean: one task per input block (normalize → filter → PII → fingerprints), at most two per
   CPU of the cluster in flight, so the driver reads ahead only that far. A task's outputs
   stay in Ray's object store (spilled to disk when it fills): the cleaned block, its
   signatures, and its key rows already split into one part per reducer (the map side).
2. exact copies: P reducers each take their part of every block's content keys and report
   the keys held by more than one document.
3. near copies: P reducers each take their part of every block's band keys (16 bytes a row,
   no signatures) and propose the document pairs that share a bucket; one task per block
   then compares the candidates' signatures, fetching only the blocks that hold them.
4. The driver, which holds only the copies and confirmed pairs (a share of the duplicates,
   not of the corpus), walks the blocks in input order and decides: a document is dropped
   when an earlier kept one is an exact or confirmed near copy. That is the rule the local
   index applies document by document, so the output is byte-identical to `--engine local`.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import CleanedBlock, clean_block
from lmforge.data.dedup import Deduplicator, Fingerprints
from lmforge.data.document import Document
from lmforge.data.engines import keyshuffle
from lmforge.errors import MissingDependencyError

log = logging.getLogger(__name__)
# Clean tasks queued or running per cluster CPU: enough that no CPU waits on the driver's
# reading, few enough that the raw text in flight stays a few blocks.
_IN_FLIGHT_PER_CPU = 2


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


def _clean_task(
    cfg: PrepareConfig, block: list[Document], lsh: tuple[int, int] | None, parts: int
) -> CleanedBlock | tuple[Any, ...]:
    """Without dedup the cleaned block; with it, the cleaned block (without signatures: the
    driver never needs them), its signatures, then `parts` exact-row parts and, with `lsh`
    (bands, rows), `parts` band-row parts."""
    done = clean_block(cfg, block, cfg.dedup != "none")
    if done.prints is None:
        return done
    exact = keyshuffle.exact_rows(done, parts)
    if lsh is None:
        return done, None, *exact
    bands = keyshuffle.band_rows(done, *lsh, parts)
    signed = keyshuffle.signed(done)
    done.prints = Fingerprints(done.prints.keys, None)
    return done, signed, *exact, *bands


class _Cleaning:
    """Clean tasks submitted as the blocks are read, never more than `limit` unfinished."""

    def __init__(self, ray: Any, cfg: PrepareConfig, dedup: Deduplicator | None) -> None:
        self.ray = ray
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.limit = _IN_FLIGHT_PER_CPU * cpus
        self.parts = max(2, cpus)
        returns = 1 if dedup is None else 2 + self.parts * (2 if dedup.near else 1)
        self.task = ray.remote(num_returns=returns)(_clean_task)
        self.cfg, self.dedup = cfg, dedup
        # The LSH layout, not the Deduplicator: its index and scratch file stay here.
        self.lsh = (dedup.bands, dedup.rows) if dedup is not None and dedup.near else None
        self.outputs: list[list[Any]] = []
        self.first_ordinals: list[int] = []
        self.unfinished: list[Any] = []

    def submit(self, block: list[Document]) -> Any:
        refs = self.task.remote(self.cfg, block, self.lsh, self.parts)
        if self.dedup is None:
            refs = [refs]
        else:
            # Kept for the shuffles and the ordered walk; without dedup the caller holds
            # the one ref, so each block is freed once it has been handed on.
            refs = list(refs)
            self.outputs.append(refs)
            self.first_ordinals.append(block[0].ordinal)
        self.unfinished.append(refs[0])
        if len(self.unfinished) > self.limit:
            extra = len(self.unfinished) - self.limit
            # fetch_local=False: waiting must not pull the cleaned blocks to the driver's node.
            _, self.unfinished = self.ray.wait(
                self.unfinished, num_returns=extra, fetch_local=False
            )
        return refs[0]

    def column(self, index: int) -> list[Any]:
        return [out[index] for out in self.outputs]


def _streamed(
    ray: Any, cleaning: _Cleaning, blocks: Iterable[list[Document]]
) -> Iterator[CleanedBlock]:
    """Without dedup nothing waits for the whole corpus: each block is handed on while the
    next `limit` ones clean."""
    ahead: deque[Any] = deque()
    for block in blocks:
        ahead.append(cleaning.submit(block))
        if len(ahead) > cleaning.limit:
            yield ray.get(ahead.popleft())
    while ahead:
        yield ray.get(ahead.popleft())


def _in_order(ray: Any, refs: list[Any]) -> Iterator[CleanedBlock]:
    """The blocks one at a time; each is released from the driver once handed on."""
    for n, ref in enumerate(refs):
        refs[n] = None
        yield ray.get(ref)


def ray_cleaned_blocks(
    cfg: PrepareConfig, blocks: Iterable[list[Document]], dedup: Deduplicator | None
) -> tuple[Iterator[CleanedBlock], ShuffledDecisions | None]:
    """Every block cleaned on Ray, and (with dedup) the decisions of the key shuffles; the
    blocks come back one at a time in input order."""
    ray = start_ray(cfg.ray_address, cfg.workers)
    cleaning = _Cleaning(ray, cfg, dedup)
    if dedup is None:
        return _streamed(ray, cleaning, blocks), None
    for block in blocks:
        cleaning.submit(block)
    if not cleaning.outputs:
        return iter(()), ShuffledDecisions(dedup, {}, [])
    parts = cleaning.parts
    reduce_copies = ray.remote(keyshuffle.copies)
    exact = range(2, 2 + parts)
    found = ray.get([reduce_copies.remote(*cleaning.column(p)) for p in exact])
    copies = {k: v for part in found for k, v in part.items()}
    pairs = np.empty((0, 2), np.int64)
    if dedup.near:
        pairs = _near_pairs(ray, cleaning, copies, dedup.threshold)
    log.info("ray: %d exact copies, %d confirmed near pairs", len(copies), len(pairs))
    decisions = ShuffledDecisions(dedup, copies, pairs.tolist())
    rows_per_doc = 24 + (16 * dedup.bands if dedup.near else 0)
    decisions.stats.details["shuffle_bytes_per_document"] = rows_per_doc
    blocks_in_order = cleaning.column(0)
    # Only the blocks are left to read: let the store free the signatures and key rows.
    cleaning.outputs.clear()
    return _in_order(ray, blocks_in_order), decisions


def _near_pairs(
    ray: Any, cleaning: _Cleaning, copies: dict[int, int], threshold: float
) -> np.ndarray:
    parts = cleaning.parts
    skipped = ray.put(np.sort(np.fromiter(copies, np.int64, len(copies))))
    propose = ray.remote(keyshuffle.candidate_pairs)
    bands = range(2 + parts, 2 + 2 * parts)
    proposed = ray.get([propose.remote(skipped, *cleaning.column(p)) for p in bands])
    candidates = np.unique(np.concatenate(proposed), axis=0)
    if len(candidates) == 0:
        return candidates
    # The block holding each document: blocks are runs of consecutive input ordinals.
    starts = np.asarray(cleaning.first_ordinals, np.int64)
    later_block = np.searchsorted(starts, candidates[:, 1], side="right") - 1
    earlier_block = np.searchsorted(starts, candidates[:, 0], side="right") - 1
    signed = cleaning.column(1)
    confirm = ray.remote(keyshuffle.confirmed_pairs)
    pending = []
    for block in np.unique(later_block).tolist():
        mine = later_block == block
        needed = sorted({block, *earlier_block[mine].tolist()})
        refs = [signed[b] for b in needed]
        pending.append(confirm.remote(threshold, candidates[mine], *refs))
    return np.concatenate(ray.get(pending))


class ShuffledDecisions:
    """`Deduplicator.decide`'s answers from the shuffle's copies and confirmed pairs, counted
    on the same stats."""

    def __init__(
        self, dedup: Deduplicator, copies: dict[int, int], pairs: Iterable[Sequence[int]]
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
