from __future__ import annotations

import pytest

from lmforge.data.dedup import Deduplicator, shingles
from lmforge.data.document import Document, StageStats
from lmforge.data.sample import HashSampler, representative_ordinals
from lmforge.data.split import split_of
from tests.conftest import corpus


def _dedup(near: bool = True) -> Deduplicator:
    return Deduplicator(near=near, threshold=0.8, shingle_words=3, num_perm=128, seed=7)


def test_exact_and_near_duplicates_on_real_text(ptb_lines: list[str]) -> None:
    originals = [line for line in ptb_lines if len(line.split()) > 20][:200]
    stage = _dedup()
    kept = [stage(Document(t, f"o:{i}", i)) for i, t in enumerate(originals)]
    assert all(k is not None for k in kept)
    exact = stage(Document(originals[5], "copy", 1000))
    # A near-copy: one word changed in a long sentence.
    words = originals[9].split()
    words[-2] = "zebra"
    near = stage(Document(" ".join(words), "near", 1001))
    assert exact is None and near is None
    assert stage.stats.removed == {"exact_duplicate": 1, "near_duplicate": 1}
    assert "(near-copy of document #9)" in stage.stats.examples["near_duplicate"][0]
    assert stage.stats.details["index_documents"] == 200


def test_exact_only_keeps_near_copies(ptb_lines: list[str]) -> None:
    stage = _dedup(near=False)
    line = next(line for line in ptb_lines if len(line.split()) > 20)
    assert stage(Document(line, "a", 0)) is not None
    assert stage(Document(line + " again", "b", 1)) is not None
    assert stage(Document(line, "c", 2)) is None


def test_shingles_of_short_text() -> None:
    assert shingles("Hello, world", 5) == {b"hello world"}
    assert shingles("", 5) == set()
    assert len(shingles("a b c d e f", 3)) == 4


def test_split_is_deterministic_and_stable_under_growth(ptb_lines: list[str]) -> None:
    fractions = [0.8, 0.1, 0.1]
    first = {t: split_of(t, fractions, 1) for t in ptb_lines[:1000]}
    grown = {t: split_of(t, fractions, 1) for t in ptb_lines}
    assert all(grown[t] == s for t, s in first.items())
    share = sum(s == "train" for s in grown.values()) / len(grown)
    assert 0.75 < share < 0.85
    assert {split_of(t, fractions, 2) for t in ptb_lines[:50]} != {None}


def test_hash_sampler_keeps_about_the_fraction(ptb_lines: list[str]) -> None:
    sampler = HashSampler(0.25, seed=3)
    kept = [t for i, t in enumerate(ptb_lines) if sampler(Document(t, "x", i))]
    assert 0.2 < len(kept) / len(ptb_lines) < 0.3
    again = HashSampler(0.25, seed=3)
    assert kept == [t for i, t in enumerate(ptb_lines) if again(Document(t, "x", i))]


def test_representative_sample_covers_every_topic() -> None:
    """AG News has 4 topics; a 2% representative sample over 8 clusters spans all of them."""
    pytest.importorskip("sklearn")
    rows = corpus("agnews/train_subset_10k.tsv").read_text(encoding="utf-8").splitlines()[:2000]
    labels = {}
    docs = []
    for i, row in enumerate(rows):
        text, label = row.rsplit("\t", 1)
        labels[i] = label
        docs.append(Document(text, f"ag:{i}", i))
    stats = StageStats("sample")
    kept = representative_ordinals(
        lambda: iter(docs), clusters=8, fraction=0.02, seed=0, stats=stats
    )
    assert len(kept) == 40
    assert {labels[i] for i in kept} == set(labels.values())
    assert sum(stats.details["cluster_sizes"]) == 2000
    again = representative_ordinals(
        lambda: iter(docs), clusters=8, fraction=0.02, seed=0, stats=stats
    )
    assert kept == again
