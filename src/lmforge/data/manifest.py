"""The dataset dir's `manifest.json`: sources, what every stage did, splits, tokenizer, versions.

It holds no timestamps or timings, so preparing the same input twice gives identical bytes.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from lmforge.errors import DataError

FORMAT = "lmforge.dataset/1"
MANIFEST = "manifest.json"


def library_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("lmforge", *names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_manifest(dataset_dir: Path) -> dict[str, Any]:
    """Read and sanity-check a dataset dir's manifest."""
    path = dataset_dir / MANIFEST
    if not dataset_dir.is_dir():
        raise DataError(f"dataset dir {dataset_dir} does not exist")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{dataset_dir} is not a dataset dir: it has no {MANIFEST}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not an lmforge dataset manifest (format {FORMAT})")
    return manifest


def split_path(dataset_dir: Path, split: str) -> Path:
    return dataset_dir / f"{split}.bin"
