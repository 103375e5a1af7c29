"""The Ray engine's key shuffle, run in this process (no Ray): its decisions are the local
index's, document for document, on a corpus with exact and near copies across blocks."""

from __future__ import annotations

import numpy as np

from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import blocks_of, clean_block
from lmforge.data.document import Document
from lmforge.data.engines import keyshuffle
from lmforge.data.engines.ray import ShuffledDecisions
from lmforge.data.prepare import ordered_stages
from tests.conftest import corpus

PARTS = 3


def _documents() -> list[Document]:
    lines = corpus("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()[:600]
    texts = list(lines)
    texts += lines[10:40]  # exact copies, in later blocks
    texts += [line + " indeed" for line in lines[100:160]]  # near copies: one word more
    texts += texts[-5:]  # exact copies of near copies
    return [Document(text, f"t:{n}", n) for n, text in enumerate(texts)]


def test_shuffled_decisions_are_the_local_indexs() -> None:
    cfg = build_config(PrepareConfig, {"inputs": ["unused"], "output": "unused"})
    local, shuffled = ordered_stages(cfg)[0], ordered_stages(cfg)[0]
    blocks = [clean_block(cfg, block, True) for block in blocks_of(_documents(), 97)]

    exact = [keyshuffle.exact_rows(b, PARTS) for b in blocks]
    copies: dict[int, int] = {}
    for p in range(PARTS):
        copies.update(keyshuffle.copies(*(rows[p] for rows in exact)))
    skipped = np.sort(np.fromiter(copies, np.int64, len(copies)))
    bands = [keyshuffle.band_rows(b, shuffled.bands, shuffled.rows, PARTS) for b in blocks]
    candidates = np.concatenate(
        [keyshuffle.candidate_pairs(skipped, *(rows[p] for rows in bands)) for p in range(PARTS)]
    )
    pairs = keyshuffle.confirmed_pairs(
        shuffled.threshold, candidates, *(keyshuffle.signed(b) for b in blocks)
    )
    decisions = ShuffledDecisions(shuffled, copies, pairs.tolist())

    expected = [local.decide(b.docs, b.prints) for b in blocks]
    got = [decisions.decide(b.docs, b.prints) for b in blocks]  # type: ignore[arg-type]
    assert got == expected
    assert local.stats.removed == shuffled.stats.removed
    assert local.stats.removed["exact_duplicate"] >= 30
    assert local.stats.removed["near_duplicate"] >= 20
    assert local.stats.examples == shuffled.stats.examples


def test_a_partition_without_rows_reduces_to_nothing() -> None:
    empty_keys, empty_ordinals = np.empty((0, 2), np.uint64), np.empty(0, np.int64)
    assert keyshuffle.copies((empty_keys, empty_ordinals)) == {}
    no_bands = (np.empty(0, np.uint64), empty_ordinals)
    assert keyshuffle.candidate_pairs(empty_ordinals, no_bands).shape == (0, 2)
