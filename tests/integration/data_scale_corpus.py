"""A fixed corpus with planted exact and near copies, and the digest of a dataset dir: the
golden digest in test_data_scale.py was taken from the single-process pipeline before the
parallel engines replaced it, so they are held to its bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.conftest import corpus

DIGESTED = ("train.bin", "valid.bin", "test.bin", "tokenizer.json")


def write_planted_corpus(path: Path, lines: int = 3000) -> Path:
    """PTB lines, then exact copies, near-copies (one word changed) and a few PII lines."""
    base = corpus("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()[:lines]
    planted = list(base)
    planted += base[100:140]
    for line in base[300:400]:
        words = line.split()
        if len(words) >= 20:
            words[len(words) // 2] = "planted"
            planted.append(" ".join(words))
    planted += [line + " indeed" for line in base[500:560]]
    planted += [f"write to person{i}@example.com or call 555-010{i % 10} today" for i in range(5)]
    planted += base[2000:2010]
    path.write_text("\n".join(planted) + "\n", encoding="utf-8")
    return path


def dataset_digest(directory: Path, source: Path) -> str:
    """sha256 over the token files, the tokenizer and the manifest's per-stage counts and
    examples (not its details, which report index sizes and library versions), the examples'
    `file:line` origins taken relative to `source`'s dir."""
    digest = hashlib.sha256()
    for name in DIGESTED:
        digest.update((directory / name).read_bytes())
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    stages = [{k: v for k, v in s.items() if k != "details"} for s in manifest["stages"]]
    summary = json.dumps([stages, manifest["splits"]], sort_keys=True)
    digest.update(summary.replace(f"{source.parent}/", "").encode())
    return digest.hexdigest()
