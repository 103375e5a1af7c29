"""A generated corpus for `bench/data_prepare.py`: JSON-lines documents built by seeded
perturbation of ../shared/data text, most of them unique and a known share near-copies.

A document is 8-16 sentences drawn at random from the pool of lines of PTB, WikiText-2 and
AG News (so two documents almost never share much); a planted near-copy repeats a recent
document with 1% of its words replaced (Jaccard similarity of 5-word shingles about 0.9,
above the default 0.8 threshold). The planted copies' line numbers come back, the
ground truth for recall and precision.
"""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path

SOURCES = ("ptb/ptb.train.txt", "wikitext-2/wiki.valid.raw", "agnews/test.csv")


def sentence_pool(data: Path) -> list[str]:
    pool: list[str] = []
    for name in SOURCES:
        for line in (data / name).read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip().strip('"')
            if len(line.split()) >= 6 and not line.startswith("="):
                pool.append(line)
    return pool


def write_corpus(
    path: Path, data: Path, target_bytes: int, near_share: float = 0.05, seed: int = 0
) -> set[int]:
    """Write about `target_bytes` of documents to `path`; the 0-based line numbers of the
    planted near-copies."""
    rng = random.Random(seed)
    pool = sentence_pool(data)
    vocabulary = [w for line in rng.sample(pool, 2000) for w in line.split()]
    planted: set[int] = set()
    recent: deque[str] = deque(maxlen=5000)  # copies come from the last few thousand
    count = size = 0
    with open(path, "w", encoding="utf-8") as handle:
        while size < target_bytes:
            if recent and rng.random() < near_share:
                words = rng.choice(recent).split()
                for _ in range(max(1, len(words) // 100)):
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
                text = " ".join(words)
                planted.add(count)
            else:
                text = " ".join(rng.choice(pool) for _ in range(rng.randint(8, 16)))
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            handle.write(line)
            recent.append(text)
            count += 1
            size += len(line.encode("utf-8"))
    return planted
