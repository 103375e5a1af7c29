"""`lmforge data merge`: combine the shard dirs of `data prepare --shard I/N` into one dataset.

Shards clean, redact and encode their slice of the documents; deduplication and sampling need
the whole corpus in input order, so they were deferred to here. Documents are merged back into
input order by the ordinals each shard wrote, decoded for dedup and sampling (byte-level BPE
round-trips exactly), and their tokens copied unchanged: the result equals a one-shot run.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.cards import DatasetManifest
from lmforge.config import build_config
from lmforge.config.data import MergeConfig, PrepareConfig
from lmforge.data.document import Document, StageStats
from lmforge.data.manifest import library_versions, split_path
from lmforge.data.pack import ORDINAL_DTYPE
from lmforge.data.prepare import PrepareResult, dedup_and_sample_stages, run_stages, split_entry
from lmforge.data.split import SPLITS
from lmforge.errors import DataError
from lmforge.fsutil import atomic_dir
from lmforge.progress import progress_bar


def _check_shards(dirs: list[Path], manifests: list[dict[str, Any]]) -> list[int]:
    """Every problem with the set of shards, at once; returns shard dirs in index order."""
    problems = [
        f"{d} is not a shard (no --shard I/N)"
        for d, m in zip(dirs, manifests, strict=True)
        if "shard" not in m
    ]
    if problems:
        raise DataError("cannot merge: " + "; ".join(problems))
    counts = {m["shard"]["count"] for m in manifests}
    if len(counts) > 1:
        problems.append(f"shards come from runs with different N ({sorted(counts)})")
    indices = [m["shard"]["index"] for m in manifests]
    missing = sorted(set(range(max(counts))) - set(indices))
    if missing:
        problems.append(f"shard(s) {missing} of {max(counts)} are missing")
    if len(set(indices)) != len(indices):
        problems.append(f"a shard is given twice (indices {sorted(indices)})")
    first = manifests[0]
    for d, m in zip(dirs[1:], manifests[1:], strict=True):
        if m["tokenizer"]["sha256"] != first["tokenizer"]["sha256"]:
            problems.append(f"{d} uses a different tokenizer than {dirs[0]}")
        if {**m["options"], "shard": ""} != {**first["options"], "shard": ""}:
            problems.append(f"{d} was prepared with different options than {dirs[0]}")
        if m["sources"] != first["sources"]:
            problems.append(f"{d} was prepared from different inputs than {dirs[0]}")
    if problems:
        raise DataError("cannot merge: " + "; ".join(problems))
    return sorted(range(len(dirs)), key=lambda i: indices[i])


def _documents(
    directory: Path, manifest: dict[str, Any], split: str
) -> Iterator[tuple[int, str, np.ndarray]]:
    """(ordinal, split, tokens with the closing <|endoftext|>) for each document of a split."""
    entry = manifest["splits"][split]
    tokens = np.memmap(split_path(directory, split), dtype=manifest["dtype"], mode="r")
    ordinals = np.fromfile(directory / entry["ordinals"], dtype=ORDINAL_DTYPE)
    ends = np.flatnonzero(tokens == manifest["tokenizer"]["end_of_text_id"])
    if len(ends) != len(ordinals) or len(ends) != entry["documents"]:
        raise DataError(f"{directory}/{split}.bin is corrupt: document counts disagree")
    start = 0
    for ordinal, end in zip(ordinals.tolist(), ends.tolist(), strict=True):
        yield ordinal, split, tokens[start : end + 1]
        start = end + 1


def merge(cfg: MergeConfig) -> PrepareResult:
    from lmforge.data.tokenizer import load_tokenizer

    dirs = [Path(s) for s in cfg.shards]
    manifests = [DatasetManifest.read(d).content for d in dirs]
    order = _check_shards(dirs, manifests)
    dirs = [dirs[i] for i in order]
    manifests = [manifests[i] for i in order]
    first = manifests[0]
    options = {**first["options"], "shard": ""}
    prepare_cfg = build_config(
        PrepareConfig, {**options, "output": str(cfg.output)}, "shard options"
    )
    stages = dedup_and_sample_stages(prepare_cfg)
    tokenizer = load_tokenizer(dirs[0])

    stage_stats = [StageStats.from_manifest(s) for s in first["stages"]]
    for m in manifests[1:]:
        for mine, theirs in zip(stage_stats, m["stages"], strict=True):
            mine.absorb(StageStats.from_manifest(theirs))

    streams = [
        _documents(d, m, split) for d, m in zip(dirs, manifests, strict=True) for split in SPLITS
    ]
    total = sum(m["splits"][s]["documents"] for m in manifests for s in SPLITS)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with atomic_dir(Path(cfg.output), force=cfg.force) as tmp:
        handles = {split: open(split_path(tmp, split), "wb") for split in SPLITS}
        counts = {split: [0, 0, 0] for split in SPLITS}
        try:
            with progress_bar("merge", total, "docs") as bar:
                for ordinal, split, tokens in heapq.merge(*streams, key=lambda item: item[0]):
                    bar.advance()
                    text = tokenizer.decode(tokens[:-1].tolist())
                    if run_stages(stages, Document(text, f"#{ordinal}", ordinal)) is None:
                        continue
                    np.asarray(tokens).tofile(handles[split])
                    counts[split][0] += 1
                    counts[split][1] += int(tokens.size)
                    counts[split][2] += len(text.split()) + 1
        finally:
            for handle in handles.values():
                handle.close()
        (tmp / "tokenizer.json").write_bytes((dirs[0] / "tokenizer.json").read_bytes())
        manifest = {
            **first,
            "options": options,
            "stages": [s.to_manifest() for s in stage_stats + [s.stats for s in stages]],
            "splits": {s: split_entry(tmp, s, *counts[s]) for s in SPLITS},
            "versions": library_versions("tokenizers", "numpy", "scikit-learn"),
        }
        del manifest["shard"]
        DatasetManifest.write(tmp, manifest)
    seconds["merge"] = time.perf_counter() - started
    return PrepareResult(Path(cfg.output), manifest, seconds)
