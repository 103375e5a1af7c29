"""Tabular task data — .jsonl, .tsv or .csv — read into records that remember their line, so
that every problem names the file and line. Used by task fine-tuning and by evaluation."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lmforge.cards import MANIFEST
from lmforge.errors import DataError

FORMATS = ("jsonl", "tsv", "csv")


@dataclass(frozen=True)
class Record:
    """One row's fields (as text), and the line it came from."""

    line: int
    values: dict[str, str]

    def __getitem__(self, field: str) -> str:
        return self.values[field]


def data_format(path: Path, given: str = "") -> str:
    fmt = given or path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DataError(
            f"{path}: cannot tell the format from the name",
            hint=f"use a .jsonl, .tsv or .csv file, or name the format ({', '.join(FORMATS)})",
        )
    return fmt


def read_records(
    path: Path,
    fields: Sequence[str],
    *,
    fmt: str = "",
    header: bool = True,
    limit: int = 0,
) -> list[Record]:
    """The first `limit` rows (0 = all) of `path`, keeping `fields`. Without a header row,
    fields are 0-based column numbers ("4"). TSV is split on tabs with no quoting (GLUE
    files hold unbalanced quotes); CSV follows the usual quoting rules."""
    if path.is_dir():
        kind = "a dataset dir" if (path / MANIFEST).is_file() else "a directory"
        raise DataError(
            f"task data {path} is {kind}; a task takes a labelled file",
            hint="give a .jsonl, .tsv or .csv file with the task's fields",
        )
    if not path.is_file():
        raise DataError(f"task data {path} does not exist")
    fmt = data_format(path, fmt)
    records: list[Record] = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = (
            _json_rows(path, handle) if fmt == "jsonl" else _table_rows(path, handle, fmt, header)
        )
        for line, row in rows:
            missing = [f for f in fields if f not in row]
            if missing:
                raise DataError(
                    f"{path}:{line}: the row lacks {', '.join(missing)}",
                    hint=f"it has {', '.join(row) or 'no fields'}",
                )
            records.append(Record(line, {f: _text(row[f]) for f in fields}))
            if limit and len(records) >= limit:
                break
    if not records:
        raise DataError(f"{path} holds no records")
    return records


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _json_rows(path: Path, handle: TextIO) -> Iterator[tuple[int, Mapping[str, object]]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: a record must be a JSON object")
        yield number, record


def _table_rows(
    path: Path, handle: TextIO, fmt: str, header: bool
) -> Iterator[tuple[int, Mapping[str, object]]]:
    csv.field_size_limit(sys.maxsize)
    if fmt == "tsv":
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(handle)
    names: list[str] | None = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header and names is None:
            names = [cell.strip() for cell in row]
            continue
        keys = names if names is not None else [str(i) for i in range(len(row))]
        yield reader.line_num, dict(zip(keys, row, strict=False))
