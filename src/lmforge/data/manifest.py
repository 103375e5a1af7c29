"""What `data prepare` records in a dataset dir's manifest beside its counts: the library
versions that made it, and where a split's tokens live. Reading and writing `manifest.json`
itself is `lmforge.cards.DatasetManifest`'s job.

The manifest holds no timestamps or timings, so preparing the same input twice gives identical
bytes.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path


def library_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("lmforge", *names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def split_path(dataset_dir: Path, split: str) -> Path:
    return dataset_dir / f"{split}.bin"
