"""Reading a task's records and naming the data a number was computed on (path + sha256)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.cards import DatasetManifest
from lmforge.config.evaluate import TaskData
from lmforge.errors import DataError
from lmforge.fsutil import sha256_file
from lmforge.records import Record, read_records


def data_entry(path: str, split: str | None = None) -> dict[str, Any]:
    """{path, sha256} of a file; for a dataset dir, of the split's token file."""
    location = Path(path)
    if location.is_dir():
        entry = DatasetManifest.read(location).split(split or "test")
        return {"path": path, "split": split, "sha256": entry.sha256}
    return {"path": path, "sha256": sha256_file(location)}


def task_records(spec: TaskData, roles: tuple[str, ...]) -> list[Record]:
    """The task's rows with each role's column; a row with an empty value is an error that
    names the file and line."""
    columns = [spec.column(role) for role in roles]
    records = read_records(
        Path(spec.data), columns, fmt=spec.format, header=spec.header, limit=spec.limit
    )
    for record in records:
        for role, column in zip(roles, columns, strict=True):
            if not record[column].strip():
                raise DataError(f"{spec.data}:{record.line}: the {role} ({column!r}) is empty")
    return records
