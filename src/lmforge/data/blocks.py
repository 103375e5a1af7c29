"""The per-document half of the pipeline over one block of documents: normalize → filter →
PII → dedup fingerprints. A block's result depends only on its documents and the options,
so the engines (local processes, Ray tasks) run blocks anywhere, in any order, and the
ordered half (dedup decisions, sampling, routing) consumes them in input order.

`BlockCache` keeps finished blocks on disk beside `--output` so that an interrupted run
resumes from them; a block is found again by a hash of its raw documents and the options,
so a changed input or option is never served a stale block.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lmforge.config.data import PrepareConfig
from lmforge.data.clean import Normalizer, QualityFilter
from lmforge.data.dedup import Fingerprints, fingerprints
from lmforge.data.document import Document, Stage, StageStats
from lmforge.data.minhash import MinHasher
from lmforge.data.pii import PiiRedactor

log = logging.getLogger(__name__)
# A block ends at this many documents or characters, whichever comes first: small enough to
# spread over cores and bound memory, large enough that numpy and pickling amortise.
BLOCK_DOCS = 2048
BLOCK_CHARS = 4_000_000
_CACHE_FORMAT = 1


@dataclass
class CleanedBlock:
    """A block's surviving documents, each stage's share of the counts, the survivors'
    fingerprints (None without dedup) and the raw bytes of text the block read."""

    docs: list[Document]
    stats: list[StageStats]
    prints: Fingerprints | None
    chars_read: int = 0
    fingerprint_seconds: float = 0.0


def blocks_of(
    documents: Iterable[Document], max_docs: int = BLOCK_DOCS
) -> Iterator[list[Document]]:
    block: list[Document] = []
    chars = 0
    for doc in documents:
        block.append(doc)
        chars += len(doc.text)
        if len(block) >= max_docs or chars >= BLOCK_CHARS:
            yield block
            block, chars = [], 0
    if block:
        yield block


def document_stages(cfg: PrepareConfig) -> list[Stage]:
    """Fresh per-document stages (their stats count one block)."""
    stages: list[Stage] = [
        Normalizer(markup=cfg.strip_markup),
        QualityFilter(
            min_chars=cfg.min_chars,
            max_chars=cfg.max_chars,
            min_alpha_fraction=cfg.min_alpha_fraction,
            max_repeated_line_fraction=cfg.max_repeated_line_fraction,
        ),
    ]
    if cfg.pii:
        stages.append(PiiRedactor(phone_region=cfg.pii_phone_region))
    return stages


@lru_cache(maxsize=4)
def _hasher(num_perm: int, seed: int, shingle_words: int) -> MinHasher:
    return MinHasher(num_perm, seed, shingle_words)


def run_stages_over(stages: list[Stage], docs: list[Document]) -> list[Document]:
    """The documents that pass every stage, taken stage by stage over the whole list, with
    each stage's counts and time: the same documents, counts and examples as passing each
    document through all the stages in turn (a stage sees the documents in the same order)."""
    for stage in stages:
        stats = stage.stats
        started = time.perf_counter()
        stats.docs_in += len(docs)
        stats.chars_in += sum(len(doc.text) for doc in docs)
        docs = [kept for doc in docs if (kept := stage(doc)) is not None]
        stats.docs_out += len(docs)
        stats.chars_out += sum(len(doc.text) for doc in docs)
        stats.seconds += time.perf_counter() - started
    return docs


def clean_block(cfg: PrepareConfig, block: list[Document], fingerprint: bool) -> CleanedBlock:
    """Run the per-document stages over a block, then fingerprint what survived."""
    stages = document_stages(cfg)
    kept = run_stages_over(stages, block)
    prints = None
    started = time.perf_counter()
    if fingerprint:
        near = cfg.dedup == "exact+near"
        hasher = _hasher(cfg.minhash_perm, cfg.seed, cfg.shingle_words) if near else None
        prints = fingerprints([doc.text for doc in kept], hasher)
    took = time.perf_counter() - started
    chars = sum(len(doc.text) for doc in block)
    return CleanedBlock(kept, [s.stats for s in stages], prints, chars, took)


class BlockCache:
    """Finished blocks as pickles under `directory`, named by a hash of the options that
    change a block's result and the block's raw documents."""

    def __init__(self, directory: Path, cfg: PrepareConfig) -> None:
        from lmforge.data.prepare import content_options

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        options = json.dumps(content_options(cfg), sort_keys=True, default=str)
        self._salt = f"{_CACHE_FORMAT}\0{options}".encode()
        self.reused = 0

    def path(self, block: list[Document]) -> Path:
        digest = hashlib.blake2b(self._salt, digest_size=20)
        # One update of the bytes that one update per field would hash: the same name.
        fields = (f"{d.ordinal}\0{d.origin}\0{d.split}\0{d.text}\0" for d in block)
        digest.update("".join(fields).encode("utf-8", "surrogatepass"))
        return self.directory / f"{digest.hexdigest()}.pickle"

    def load(self, path: Path) -> CleanedBlock | None:
        try:
            with open(path, "rb") as handle:
                done: CleanedBlock = pickle.load(handle)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
        self.reused += 1
        return done

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def clean_and_save(
    cfg: PrepareConfig, block: list[Document], fingerprint: bool, path: Path | None
) -> CleanedBlock:
    """`clean_block`, then its result saved at `path` (whole or not at all), where the
    worker that computed it runs."""
    done = clean_block(cfg, block, fingerprint)
    if path is not None:
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as handle:
            pickle.dump(done, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
    return done
