"""`lmforge data prepare`: raw text in, dataset dir out (DESIGN.md §4).

Pass 1 reads every source in blocks; an engine (`engines/local.py`: a process pool;
`engines/ray.py`: Ray tasks) runs normalize → filter → PII → dedup fingerprints over each
block (`blocks.py`), and the blocks come back in input order to the dedup decisions and
sampling, which route each kept document to its split's spill file: the output does not
depend on the engine or the number of workers. The tokenizer trains on the train split's
documents as they are routed (`train_thread.py`), or one is loaded. Pass 2 encodes the
spills into `.bin` token files (with Ray: as tasks, `engines/ray_pack.py`). All of it
happens in a temporary dir that replaces `--output` only when everything succeeded.

Over ~300 lines: the pipeline's phases (stages, sample, tokenizer, packing, manifest) are
each a function here, in the order they run, so the whole pass reads in one place.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.cards import MANIFEST_FORMAT, DatasetManifest
from lmforge.config import to_dict
from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import (
    BlockCache,
    CleanedBlock,
    blocks_of,
    document_stages,
    run_stages_over,
)
from lmforge.data.canary import canary_documents, make_canaries, manifest_entry
from lmforge.data.dedup import Deduplicator
from lmforge.data.document import Document, Stage, StageStats
from lmforge.data.engines.local import cleaned_blocks
from lmforge.data.manifest import library_versions
from lmforge.data.sample import HashSampler, representative_ordinals
from lmforge.data.sources import Reader, ReadOptions
from lmforge.data.spill import SpillWriter, read_spill
from lmforge.data.split import SPLITS, split_of
from lmforge.data.train_thread import BackgroundTraining, training_alongside
from lmforge.errors import DataError
from lmforge.fsutil import atomic_dir, sha256_file
from lmforge.progress import progress_bar
from lmforge.threads import usable_cpus

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from lmforge.data.engines.ray import ShuffledDecisions

log = logging.getLogger(__name__)
# Options that do not change the dataset's content stay out of the manifest.
_NOT_CONTENT = ("output", "force", "workers", "block_docs", "engine", "ray_address")


@dataclass
class PrepareResult:
    output: Path
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    resumed_blocks: int = 0


def run_stages(stages: list[Stage], doc: Document) -> Document | None:
    """Pass one document through the stages, keeping each stage's counts and time."""
    kept = run_stages_over(stages, [doc])
    return kept[0] if kept else None


def ordered_stages(cfg: PrepareConfig) -> list[Stage]:
    """The stages that see the documents in input order, after the per-document ones: dedup
    (first occurrence wins) then sampling."""
    stages: list[Stage] = []
    if cfg.dedup != "none":
        stages.append(
            Deduplicator(
                near=cfg.dedup == "exact+near",
                threshold=cfg.near_dup_threshold,
                shingle_words=cfg.shingle_words,
                num_perm=cfg.minhash_perm,
                seed=cfg.seed,
            )
        )
    if cfg.sample == "random":
        stages.append(HashSampler(cfg.sample_fraction, cfg.seed))
    return stages


def dedup_block(dedup: Deduplicator | ShuffledDecisions, block: CleanedBlock) -> list[Document]:
    """The documents of a cleaned block that are no copy of an earlier one, with dedup's
    counts and time (the fingerprints' share was spent where the block was cleaned)."""
    assert block.prints is not None
    stats = dedup.stats
    started = time.perf_counter()
    decisions = dedup.decide(block.docs, block.prints)
    kept = [doc for doc, keep in zip(block.docs, decisions, strict=True) if keep]
    stats.seconds += time.perf_counter() - started + block.fingerprint_seconds
    stats.docs_in += len(block.docs)
    stats.chars_in += sum(len(doc.text) for doc in block.docs)
    stats.docs_out += len(kept)
    stats.chars_out += sum(len(doc.text) for doc in kept)
    return kept


def block_cache_dir(output: Path) -> Path:
    """Finished blocks of a run, beside `--output`, kept until the run succeeds."""
    return output.parent / f".{output.name}.blocks"


def content_options(cfg: PrepareConfig) -> dict[str, Any]:
    return {k: v for k, v in to_dict(cfg).items() if k not in _NOT_CONTENT}


def prepare(cfg: PrepareConfig) -> PrepareResult:
    """Run the whole pipeline; raises `DataError`/`ConfigError` with a clear message on bad
    input and leaves nothing at `cfg.output` unless it succeeded."""
    if cfg.workers:
        # Read by the tokenizers thread pool when it first starts, which is later than this.
        os.environ["RAYON_NUM_THREADS"] = str(cfg.workers)
    from lmforge.data.pack import token_dtype
    from lmforge.data.tokenizer import end_of_text_id, load_tokenizer

    options = ReadOptions(
        cfg.txt_mode, cfg.text_field, cfg.text_column, cfg.strict, encoding=cfg.encoding
    )
    fixed = cfg.fixed_splits
    reader = Reader([*cfg.inputs, *cfg.valid_inputs, *cfg.test_inputs], options, fixed)
    reused = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None

    representative = cfg.representative_clusters > 0
    seconds: dict[str, float] = {}
    output = Path(cfg.output)

    with (
        atomic_dir(output, force=cfg.force) as tmp,
        training_alongside(cfg, reused is None) as training,
    ):
        work = tmp / "_work"
        work.mkdir()
        spills = {name: SpillWriter(work / f"{name}.jsonl") for name in SPLITS}
        pool = SpillWriter(work / "all.jsonl") if representative else None

        def route(doc: Document) -> None:
            split = doc.split or split_of(doc.text, cfg.split, cfg.seed)
            spills[split].write(doc)
            if split == "train" and training is not None:
                training.add(doc.text)

        cleaning = [s.stats for s in document_stages(cfg)]
        ordered = ordered_stages(cfg)
        dedup = next((s for s in ordered if isinstance(s, Deduplicator)), None)
        cache = BlockCache(block_cache_dir(output), cfg)
        with progress_bar("read + clean", reader.total_bytes / 1e6 or None, "MB") as bar:
            reader.on_bytes = lambda n: bar.advance(n / 1e6)
            reading = {"seconds": 0.0}
            blocks = _timed(blocks_of(reader.documents(), cfg.block_docs), reading)
            decider: Deduplicator | ShuffledDecisions | None = dedup
            if cfg.engine == "ray":
                from lmforge.data.engines.ray import ray_cleaned_blocks

                done, decider = ray_cleaned_blocks(cfg, blocks, dedup)
            else:
                workers = cfg.workers or usable_cpus()
                done = cleaned_blocks(
                    cfg, blocks, workers=workers, fingerprint=dedup is not None, cache=cache
                )
            for block in done:
                for total, part in zip(cleaning, block.stats, strict=True):
                    total.absorb(part)
                bar.update(description=_progress_line(reader.stats, cleaning, ordered))
                kept = block.docs
                if decider is not None:
                    kept = dedup_block(decider, block)
                after = ordered[1:] if dedup is not None else ordered
                for doc in kept:
                    if (chosen := run_stages(after, doc)) is not None:
                        (pool.write if pool else route)(chosen)
        seconds["read"] = reading["seconds"]
        stage_stats = [reader.stats, *cleaning, *(s.stats for s in ordered)]

        if pool is not None:
            pool.close()
            stage_stats.append(_sample_representative(cfg, pool.path, route))
        canaries = make_canaries(cfg.canaries, cfg.canary_repeats, cfg.seed)
        for doc in canary_documents(canaries):
            route(doc)
        for spill in spills.values():
            spill.close()
        for stats in stage_stats:
            seconds.setdefault(stats.name, stats.seconds)

        if spills["train"].count == 0:
            raise DataError(
                f"empty corpus: no training documents are left after cleaning "
                f"({_removal_summary(stage_stats)})",
                hint="check the inputs and loosen --min-chars/--min-alpha-fraction/--dedup",
            )
        for name in ("valid", "test"):
            if spills[name].count == 0:
                log.warning("the %s split is empty; the corpus is too small for --split", name)

        started = time.perf_counter()
        tokenizer, tokenizer_info = _tokenizer(cfg, reused, training)
        tokenizer.save(str(tmp / "tokenizer.json"))
        seconds["tokenizer"] = time.perf_counter() - started

        started = time.perf_counter()
        splits = _pack_splits(cfg, spills, tokenizer, tmp)
        seconds["pack"] = time.perf_counter() - started
        for written in (*spills.values(), pool):
            if written is not None:
                written.path.unlink()
        work.rmdir()

        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "sources": reader.manifest_sources(),
            "options": content_options(cfg),
            "stages": [s.to_manifest() for s in stage_stats],
            "splits": splits,
            "dtype": token_dtype(tokenizer.get_vocab_size()).name,
            "seed": cfg.seed,
            "tokenizer": {
                **tokenizer_info,
                "file": "tokenizer.json",
                "sha256": sha256_file(tmp / "tokenizer.json"),
                "vocab_size": tokenizer.get_vocab_size(),
                "end_of_text_id": end_of_text_id(tokenizer),
            },
            "versions": library_versions("tokenizers", "numpy", "scikit-learn"),
        }
        if canaries:
            manifest["canaries"] = manifest_entry(canaries)
        DatasetManifest.write(tmp, manifest)
        # The finished output holds all the blocks were for; drop them before it is renamed
        # into place, so that no kill leaves them behind beside a complete output.
        cache.remove()
    return PrepareResult(output, manifest, seconds, cache.reused)


def _sample_representative(
    cfg: PrepareConfig, pool: Path, route: Callable[[Document], None]
) -> StageStats:
    """`--sample representative:K`: route the documents of the clusters' sample from the
    spilled pool of every cleaned document."""
    stats = StageStats("sample")
    started = time.perf_counter()
    kept = representative_ordinals(
        lambda: read_spill(pool),
        clusters=cfg.representative_clusters,
        fraction=cfg.sample_fraction,
        seed=cfg.seed,
        stats=stats,
    )
    select: list[Stage] = [_Select(kept, stats)]
    for doc in read_spill(pool):
        if run_stages(select, doc) is not None:
            route(doc)
    stats.seconds = time.perf_counter() - started
    return stats


def _pack_splits(
    cfg: PrepareConfig, spills: dict[str, SpillWriter], tokenizer: Tokenizer, out: Path
) -> dict[str, Any]:
    """Encode and pack every split's documents into `out/NAME.bin`; their manifest entries."""
    from lmforge.data.pack import pack

    if cfg.engine == "ray":
        from lmforge.data.engines.ray import start_ray
        from lmforge.data.engines.ray_pack import ray_pack_splits

        ray = start_ray(cfg.ray_address, cfg.workers)
        counts = ray_pack_splits(ray, spills, tokenizer, out)
        return {name: split_entry(out, name, *count) for name, count in counts.items()}

    splits: dict[str, Any] = {}
    total_docs = sum(spill.count for spill in spills.values())
    with progress_bar("encode + pack", total_docs, "docs") as bar:
        for name, spill in spills.items():
            docs, tokens, words = pack(
                read_spill(spill.path),
                tokenizer,
                out / f"{name}.bin",
                on_batch=bar.advance,
            )
            splits[name] = split_entry(out, name, docs, tokens, words)
    return splits


def _tokenizer(
    cfg: PrepareConfig, reused: Tokenizer | None, training: BackgroundTraining | None
) -> tuple[Tokenizer, dict[str, Any]]:
    """The `--tokenizer` given, or the one trained on the train split as it was routed (up to
    a character budget), with what the manifest says of it."""
    from lmforge.data.tokenizer import tokenizer_file

    if reused is not None:
        source = sha256_file(tokenizer_file(cfg.tokenizer))
        return reused, {"kind": "reused", "source": cfg.tokenizer, "source_sha256": source}
    assert training is not None
    with progress_bar("train tokenizer", None):
        tokenizer = training.finish()
    kind = "char" if cfg.char_level else "bpe"
    return tokenizer, {"kind": kind, "trained_on": training.budget}


def split_entry(directory: Path, name: str, docs: int, tokens: int, words: int) -> dict[str, Any]:
    """A split's manifest entry. `words` counts whitespace-separated words plus one per document
    for its end (the end-of-line of line-per-document corpora): the denominator of word-level
    perplexity, comparable across tokenizers."""
    file = f"{name}.bin"
    entry: dict[str, Any] = {"file": file, "documents": docs, "tokens": tokens, "words": words}
    entry["sha256"] = sha256_file(directory / file)
    return entry


class _Select:
    """Keeps the documents whose ordinal the representative sampler chose."""

    def __init__(self, kept: set[int], stats: StageStats) -> None:
        self.kept = kept
        self.stats = stats

    def __call__(self, doc: Document) -> Document | None:
        if doc.ordinal in self.kept:
            return doc
        self.stats.drop("not_representative", doc)
        return None


def _progress_line(read: StageStats, cleaning: list[StageStats], ordered: list[Stage]) -> str:
    """`read + clean: 12,345 docs; filter kept 12,001; dedup kept 11,900`: where the
    documents go, stage by stage, over the whole corpus."""
    parts = [f"read + clean: {read.docs_in:,} docs"]
    parts += [f"{s.name} kept {s.docs_out:,}" for s in (*cleaning, *(o.stats for o in ordered))]
    return "; ".join(parts)


def _timed(items: Iterator[list[Document]], spent: dict[str, float]) -> Iterator[list[Document]]:
    """`items`, adding the time spent producing each to `spent["seconds"]` (the reading's
    share; the stages' seconds are their workers' own, summed over workers)."""
    while True:
        started = time.perf_counter()
        item = next(items, None)
        spent["seconds"] += time.perf_counter() - started
        if item is None:
            return
        yield item


def _removal_summary(stats: list[StageStats]) -> str:
    parts = [f"{s.name} removed {sum(s.removed.values()):,}" for s in stats if s.removed]
    read = stats[0].docs_in
    return f"{read:,} documents read; " + (", ".join(parts) or "nothing was removed")
