"""Canaries for memorization tests (Carlini et al., "The Secret Sharer", 2019): random
secret-shaped sequences inserted into the training split, recorded in the manifest, so that
`lmforge eval` can measure each one's exposure afterwards.

A canary is a fixed prefix and a secret of digits separated by spaces (one token per digit
in byte-level BPE), drawn from the prepare seed so the dataset stays byte-identical."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from lmforge.data.document import Document

PREFIX = "my secret code is"
DIGITS = 9


@dataclass(frozen=True)
class Canary:
    prefix: str
    secret: str
    repeats: int

    @property
    def text(self) -> str:
        return f"{self.prefix} {self.secret}"

    def to_manifest(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "secret": self.secret, "repeats": self.repeats}


def random_secret(rng: random.Random, digits: int = DIGITS) -> str:
    return " ".join(str(rng.randrange(10)) for _ in range(digits))


def make_canaries(count: int, repeats: int, seed: int) -> list[Canary]:
    rng = random.Random(f"canary{seed}")
    return [Canary(PREFIX, random_secret(rng), repeats) for _ in range(count)]


def canary_documents(canaries: list[Canary]) -> list[Document]:
    """Each canary `repeats` times, as documents of its own, origin `canary:i`."""
    return [
        Document(canary.text, f"canary:{index}", -1 - index, "train")
        for index, canary in enumerate(canaries)
        for _ in range(canary.repeats)
    ]


def manifest_entry(canaries: list[Canary]) -> dict[str, Any]:
    return {
        "format": {"prefix": PREFIX, "alphabet": "0123456789", "digits": DIGITS, "sep": " "},
        "items": [c.to_manifest() for c in canaries],
    }
