"""Documents spilled to a JSON-lines file between passes (kept in the run's temporary dir)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from lmforge.data.document import Document


class SpillWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle = open(path, "w", encoding="utf-8")

    def write(self, doc: Document) -> None:
        record = {"o": doc.ordinal, "g": doc.origin, "t": doc.text}
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SpillWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_spill(path: Path) -> Iterator[Document]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield Document(record["t"], record["g"], record["o"])
