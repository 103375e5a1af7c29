"""Deterministic hashing of document text into [0, 1), used by the split and the sampler.

A document's split depends only on its own text and the seed, so it never moves between
train/valid/test when the corpus grows.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "valid", "test")


def unit_hash(text: str, salt: str) -> float:
    """A uniform number in [0, 1) from the text; different salts give independent draws."""
    digest = hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=8, person=salt.encode()[:16]
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(text: str, fractions: list[float], seed: int) -> str:
    """The split ("train", "valid" or "test") that `text` belongs to."""
    draw = unit_hash(text, f"split{seed}")
    train, valid, _ = fractions
    if draw < train:
        return "train"
    if draw < train + valid:
        return "valid"
    return "test"
