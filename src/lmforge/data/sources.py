"""Input sources: local files (txt/jsonl/json/csv/tsv/parquet, .gz), dirs, globs, hf:, builtin:.

Everything streams: files are read line by line (a `.json` array and a parquet row group are
the only units read whole). Undecodable bytes are replaced and counted; malformed records are
skipped and reported with file:line, or raise with `strict`. Files are decoded with
`ReadOptions.encoding` (UTF-8 unless `--encoding` says otherwise); when bytes do not decode,
the console says how many and where the first one is, since the replaced text is trained on.

Longer than ~300 lines on purpose: one reader per input format behind one `Reader`, which
holds the byte counts, skip reports and the manifest's source list that every format feeds.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.data.document import Document, StageStats
from lmforge.errors import DataError
from lmforge.fsutil import sha256_file

FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
FORMATS[".parquet"] = "parquet"
BUILTIN_PREFIX = "builtin:"
HF_PREFIX = "hf:"
_REPLACEMENT = "\ufffd"
# Bytes read between progress reports (tens of lines): one report per line costs more than
# reading the line.
_PROGRESS_BYTES = 1 << 12
log = logging.getLogger("lmforge.data")


@dataclass(frozen=True)
class SourceFile:
    """One local file to read, with its format and content hash."""

    spec: str
    path: Path
    fmt: str
    gzipped: bool
    size: int
    sha256: str

    def to_manifest(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "path": str(self.path),
            "format": self.fmt + (".gz" if self.gzipped else ""),
            "bytes": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class ReadOptions:
    txt_mode: str = "line"
    text_field: str = "text"
    text_column: str = "text"
    strict: bool = False
    encoding: str = "utf-8"


def _format_of(path: Path) -> tuple[str | None, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    return (FORMATS.get(suffixes[-1]) if suffixes else None), gzipped


def _describe(path: Path, spec: str) -> SourceFile:
    fmt, gzipped = _format_of(path)
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise DataError(f"input {path}: unknown file type", hint=f"supported: {known} (+ .gz)")
    try:
        return SourceFile(spec, path, fmt, gzipped, path.stat().st_size, sha256_file(path))
    except PermissionError as exc:
        raise DataError(f"input {path} is not readable: {exc.strerror}") from exc


def resolve_local(spec: str) -> list[SourceFile]:
    """Expand a file, a directory (recursively, known types only) or a glob into files."""
    path = Path(spec)
    if path.is_file():
        return [_describe(path, spec)]
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith(".") and _format_of(p)[0] is not None
        )
        if not found:
            raise DataError(f"input directory {spec} holds no readable files", hint=_SUPPORTED)
        return [_describe(p, spec) for p in found]
    if glob.has_magic(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not matches:
            raise DataError(f"no files match {spec!r}")
        return [_describe(p, spec) for p in matches]
    raise DataError(
        f"input not found: {spec}", hint="give a file, directory, glob, hf: or builtin:"
    )


_SUPPORTED = "supported: .txt .jsonl .json .csv .tsv .parquet, each optionally .gz"


class Reader:
    """Turns input specs into one stream of `Document`s numbered by their position (ordinal)."""

    def __init__(
        self,
        specs: Iterable[str],
        options: ReadOptions,
        fixed_splits: dict[str, str] | None = None,
    ) -> None:
        self.options = options
        self.fixed_splits = fixed_splits or {}
        self.stats = StageStats("read")
        self.specs = list(specs)
        self.files: dict[str, list[SourceFile]] = {}
        for spec in self.specs:
            if not spec.startswith((BUILTIN_PREFIX, HF_PREFIX)):
                self.files[spec] = resolve_local(spec)
        if builtin_specs := [s for s in self.specs if s.startswith(BUILTIN_PREFIX)]:
            from lmforge.data.builtin import check_builtin

            for spec in builtin_specs:
                check_builtin(spec)
        self._ordinal = 0
        self._undecodable = 0
        self._first_undecodable = ""
        self.on_bytes: Callable[[int], None] = lambda n: None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for files in self.files.values() for f in files)

    def manifest_sources(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for spec in self.specs:
            if spec in self.files:
                out.extend(f.to_manifest() for f in self.files[spec])
            else:
                out.append({"spec": spec, "sha256": self.stats.details.get(f"sha256 {spec}")})
        return out

    def documents(self) -> Iterator[Document]:
        for spec in self.specs:
            split = self.fixed_splits.get(spec)
            for doc in self._spec_documents(spec):
                doc.split = split
                yield doc
        self.stats.details["undecodable_bytes_replaced"] = self._undecodable
        self.stats.details["records_skipped"] = sum(self.stats.removed.values())
        if self._undecodable:
            log.warning(
                "%d byte sequence(s) are not %s and were replaced with U+FFFD, first at %s; "
                "if the corpus is in another encoding, pass --encoding (e.g. latin-1 or cp1252)",
                self._undecodable,
                self.options.encoding,
                self._first_undecodable,
            )

    def _spec_documents(self, spec: str) -> Iterator[Document]:
        if spec.startswith(BUILTIN_PREFIX):
            from lmforge.data.builtin import builtin_texts

            yield from self._emit_texts(spec, builtin_texts(spec))
        elif spec.startswith(HF_PREFIX):
            from lmforge.data.hf import hf_texts

            yield from self._emit_texts(spec, hf_texts(spec, self.options.text_field))
        else:
            for source in self.files[spec]:
                yield from self._read_file(source)

    def _next(self, text: str, origin: str) -> Document | None:
        ordinal = self._ordinal
        self._ordinal += 1
        self.stats.docs_in += 1
        self.stats.chars_in += len(text)
        self.stats.docs_out += 1
        self.stats.chars_out += len(text)
        return Document(text, origin, ordinal)

    def _skip(self, origin: str, reason: str, detail: str) -> None:
        ordinal = self._ordinal
        self._ordinal += 1
        if self.options.strict:
            raise DataError(f"{origin}: {detail}", hint="fix the record, or drop --strict to skip")
        self.stats.docs_in += 1
        self.stats.drop(reason, Document("", origin, ordinal), example=detail)

    def _emit_texts(self, spec: str, texts: Iterable[tuple[str, str]]) -> Iterator[Document]:
        import hashlib

        digest = hashlib.sha256()
        for origin, text in texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
            if (doc := self._next(text, origin)) is not None:
                yield doc
        self.stats.details[f"sha256 {spec}"] = digest.hexdigest()

    def _lines(self, source: SourceFile) -> Iterator[str]:
        """Decoded lines; undecodable bytes are replaced with U+FFFD and counted, never fatal."""
        encoding = self.options.encoding
        handle: io.BufferedIOBase
        try:
            handle = gzip.open(source.path, "rb") if source.gzipped else open(source.path, "rb")
        except OSError as exc:
            raise DataError(f"cannot open input {source.path}: {exc.strerror}") from exc
        with handle:
            unreported = 0
            try:
                for number, raw in enumerate(handle, 1):
                    unreported += len(raw)
                    if unreported >= _PROGRESS_BYTES and not source.gzipped:
                        self.on_bytes(unreported)
                        unreported = 0
                    try:
                        yield raw.decode(encoding)
                    except UnicodeDecodeError:
                        line = raw.decode(encoding, "replace")
                        # U+FFFD already in the text is not a replacement.
                        replaced = line.count(_REPLACEMENT) - raw.decode(encoding, "ignore").count(
                            _REPLACEMENT
                        )
                        if replaced and not self._undecodable:
                            self._first_undecodable = f"{source.path}:{number}"
                        self._undecodable += replaced
                        yield line
            except (OSError, EOFError) as exc:
                raise DataError(f"input {source.path} is corrupt or truncated: {exc}") from exc
        self.on_bytes(source.size if source.gzipped else unreported)

    def _read_file(self, source: SourceFile) -> Iterator[Document]:
        readers = {
            "txt": self._read_txt,
            "jsonl": self._read_jsonl,
            "json": self._read_json,
            "csv": self._read_table,
            "tsv": self._read_table,
            "parquet": self._read_parquet,
        }
        for origin, text in readers[source.fmt](source):
            if (doc := self._next(text, origin)) is not None:
                yield doc

    def _read_txt(self, source: SourceFile) -> Iterator[tuple[str, str]]:
        path = source.path
        if self.options.txt_mode == "line":
            for number, line in enumerate(self._lines(source), 1):
                if line.strip():
                    yield f"{path}:{number}", line.rstrip("\r\n")
            return
        block: list[str] = []
        start = 1
        for number, line in enumerate(self._lines(source), 1):
            if line.strip():
                if not block:
                    start = number
                block.append(line.rstrip("\r\n"))
            elif block:
                yield f"{path}:{start}", "\n".join(block)
                block = []
        if block:
            yield f"{path}:{start}", "\n".join(block)

    def _record_text(self, record: object, origin: str) -> str | None:
        field = self.options.text_field
        if isinstance(record, str):
            return record
        if not isinstance(record, dict):
            self._skip(
                origin, "not_an_object", f"expected a JSON object, got {type(record).__name__}"
            )
            return None
        value = record.get(field)
        if not isinstance(value, str):
            problem = "lacks" if value is None else "has a non-string"
            keys = ", ".join(sorted(map(str, record))[:8])
            self._skip(origin, "missing_field", f"record {problem} field {field!r} (keys: {keys})")
            return None
        return value

    def _read_jsonl(self, source: SourceFile) -> Iterator[tuple[str, str]]:
        for number, line in enumerate(self._lines(source), 1):
            if not line.strip():
                continue
            origin = f"{source.path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                self._skip(origin, "invalid_json", f"not JSON ({exc.msg} at column {exc.colno})")
                continue
            if (text := self._record_text(record, origin)) is not None:
                yield origin, text

    def _read_json(self, source: SourceFile) -> Iterator[tuple[str, str]]:
        text = "".join(self._lines(source))
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{source.path}:{exc.lineno}: not valid JSON ({exc.msg})",
                hint="a .json input is one array of records; use .jsonl for one record per line",
            ) from exc
        if isinstance(records, dict):
            lists = [v for v in records.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{source.path}: expected an array of records (or one list field)")
            records = lists[0]
        if not isinstance(records, list):
            raise DataError(f"{source.path}: expected an array of records")
        for index, record in enumerate(records):
            origin = f"{source.path}#{index}"
            if (value := self._record_text(record, origin)) is not None:
                yield origin, value

    def _read_table(self, source: SourceFile) -> Iterator[tuple[str, str]]:
        csv.field_size_limit(sys.maxsize)
        column = self.options.text_column
        if source.fmt == "tsv":
            reader = csv.reader(self._lines(source), delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(self._lines(source))
        header = next(reader, None)
        if header is None:
            return
        if column not in header:
            raise DataError(
                f"{source.path}: no column {column!r}",
                hint=f"columns are {', '.join(header)}; pass --text-column",
            )
        index = header.index(column)
        for number, row in enumerate(reader, 2):
            origin = f"{source.path}:{number}"
            if index >= len(row):
                self._skip(origin, "short_row", f"row has {len(row)} fields, header {len(header)}")
                continue
            if row[index].strip():
                yield origin, row[index]

    def _read_parquet(self, source: SourceFile) -> Iterator[tuple[str, str]]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            from lmforge.errors import MissingDependencyError

            raise MissingDependencyError("reading .parquet", "pyarrow", "parquet") from None
        if source.gzipped:
            raise DataError(f"{source.path}: parquet is compressed inside; do not gzip it")
        column = self.options.text_column
        try:
            parquet = pq.ParquetFile(source.path)
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            raise DataError(f"{source.path}: not a readable parquet file ({exc})") from exc
        names = parquet.schema_arrow.names
        if column not in names:
            raise DataError(
                f"{source.path}: no column {column!r}",
                hint=f"columns are {', '.join(names)}; pass --text-column",
            )
        row = 0
        for batch in parquet.iter_batches(columns=[column], batch_size=4096):
            for value in batch.column(0).to_pylist():
                row += 1
                if isinstance(value, str) and value.strip():
                    yield f"{source.path}#{row}", value
        self.on_bytes(source.size)
