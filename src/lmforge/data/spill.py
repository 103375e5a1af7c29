"""Documents spilled to a JSON-lines file between passes (kept in the run's temporary dir)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import encode_basestring
from pathlib import Path
from types import TracebackType

from lmforge.data.document import Document


class SpillWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle = open(path, "w", encoding="utf-8")

    def write(self, doc: Document) -> None:
        """The line `json.dumps({"o": ordinal, "g": origin, "t": text}, ensure_ascii=False)`
        writes, built directly: json.dumps costs ten times as much per document."""
        origin, text = encode_basestring(doc.origin), encode_basestring(doc.text)
        self._handle.write(f'{{"o": {doc.ordinal}, "g": {origin}, "t": {text}}}\n')
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
