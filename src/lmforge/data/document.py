"""The unit that flows through the pipeline, and the per-stage bookkeeping for the manifest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_EXAMPLES = 3
EXAMPLE_CHARS = 160


@dataclass(slots=True)
class Document:
    """A document's text, where it came from (`file:line`), its position in the input, and
    its split when its source fixes one (else the split follows from its hash)."""

    text: str
    origin: str
    ordinal: int
    split: str | None = None

    def __reduce__(self) -> tuple[type[Document], tuple[str, str, int, str | None]]:
        # Blocks of documents cross to the workers and back pickled: as constructor arguments
        # they pickle five times as fast as the default state of a slots class.
        return Document, (self.text, self.origin, self.ordinal, self.split)


@dataclass
class StageStats:
    """What a stage did: documents and characters in/out, removals by reason, examples."""

    name: str
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    seconds: float = 0.0
    removed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def drop(self, reason: str, doc: Document, example: str | None = None) -> None:
        """Count a removed document; keep a few short examples (`example` overrides the text)."""
        self.removed[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            text = doc.text if example is None else example
            snippet = " ".join(text.split())
            if len(snippet) > EXAMPLE_CHARS:
                snippet = snippet[: EXAMPLE_CHARS - 1] + "…"
            shown.append(f"{doc.origin}: {snippet}")

    def to_manifest(self) -> dict[str, Any]:
        """Deterministic summary (no timings: equal inputs must give byte-identical manifests)."""
        return {
            "name": self.name,
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "removed": dict(sorted(self.removed.items())),
            "examples": dict(sorted(self.examples.items())),
            "details": self.details,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> StageStats:
        return cls(
            name=data["name"],
            docs_in=data["docs_in"],
            docs_out=data["docs_out"],
            chars_in=data["chars_in"],
            chars_out=data["chars_out"],
            removed=Counter(data["removed"]),
            examples={k: list(v) for k, v in data["examples"].items()},
            details=dict(data["details"]),
        )

    def absorb(self, other: StageStats) -> None:
        """Add another block's or shard's stats for the same stage (counts add, examples stay
        few and in order, per-kind count dicts add per kind)."""
        self.seconds += other.seconds
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.chars_in += other.chars_in
        self.chars_out += other.chars_out
        self.removed.update(other.removed)
        for reason, shown in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(shown[: MAX_EXAMPLES - len(mine)])
        for key, value in other.details.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.details[key] = self.details.get(key, 0) + value
            elif isinstance(value, dict) and isinstance(self.details.get(key, {}), dict):
                counts = Counter(self.details.get(key, {}))
                counts.update(value)
                self.details[key] = dict(counts)
            else:
                self.details.setdefault(key, value)


class Stage(Protocol):
    """A per-document step: returns the (possibly changed) document, or None to drop it."""

    stats: StageStats

    def __call__(self, doc: Document) -> Document | None: ...


def batched(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """Lists of up to `size` documents, in order (itertools.batched needs Python 3.12)."""
    batch: list[Document] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
