"""`lmforge data inspect`: the manifest summary, file integrity, and a few decoded documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmforge.cards import DatasetManifest
from lmforge.config.data import InspectConfig
from lmforge.data.manifest import split_path
from lmforge.fsutil import sha256_file


def integrity(dataset_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """'ok', 'missing' or 'sha256 mismatch' for the tokenizer and every split file."""
    expected = {manifest["tokenizer"]["file"]: manifest["tokenizer"]["sha256"]}
    expected.update({s["file"]: s["sha256"] for s in manifest["splits"].values()})
    status = {}
    for name, digest in expected.items():
        path = dataset_dir / name
        if not path.is_file():
            status[name] = "missing"
        else:
            status[name] = "ok" if sha256_file(path) == digest else "sha256 mismatch"
    return status


def split_summary(dataset_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The numbers a dashboard wants, flat: per split its documents, tokens, words, file bytes
    and sha256; the vocabulary and tokenizer; the token dtype."""
    splits = {}
    for name, split in manifest["splits"].items():
        path = dataset_dir / split["file"]
        splits[name] = {
            "documents": split.get("documents"),
            "tokens": split.get("tokens"),
            "words": split.get("words"),
            "file_bytes": path.stat().st_size if path.is_file() else None,
            "sha256": split.get("sha256"),
        }
    tokenizer = manifest["tokenizer"]
    return {
        "splits": splits,
        "vocab_size": tokenizer.get("vocab_size"),
        "tokenizer": {k: tokenizer.get(k) for k in ("kind", "sha256", "end_of_text_id")},
        "dtype": manifest.get("dtype"),
        "total_tokens": sum(s["tokens"] or 0 for s in splits.values()),
        "total_documents": sum(s["documents"] or 0 for s in splits.values()),
    }


def sample_documents(
    dataset_dir: Path, manifest: dict[str, Any], split: str, count: int
) -> list[str]:
    """`count` documents spread evenly over the split, decoded with the dataset's tokenizer."""
    from lmforge.data.tokenizer import load_tokenizer

    tokens = np.memmap(split_path(dataset_dir, split), dtype=manifest["dtype"], mode="r")
    if count == 0 or tokens.size == 0:
        return []
    ends = np.flatnonzero(tokens == manifest["tokenizer"]["end_of_text_id"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    picks = np.linspace(0, len(ends) - 1, num=min(count, len(ends))).round().astype(int)
    tokenizer = load_tokenizer(dataset_dir)
    return [tokenizer.decode(tokens[starts[i] : ends[i]].tolist()) for i in picks]


def inspect(cfg: InspectConfig) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    directory = Path(cfg.dataset)
    manifest = DatasetManifest.read(directory).content
    checks = integrity(directory, manifest)
    samples = []
    if checks.get(f"{cfg.split}.bin") == "ok" and checks.get("tokenizer.json") == "ok":
        samples = sample_documents(directory, manifest, cfg.split, cfg.samples)
    return manifest, checks, [s[: cfg.sample_chars] for s in samples]
