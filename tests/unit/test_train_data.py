"""A dataset dir is opened and checked once per training run (`train/data.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmforge.cards import DatasetManifest
from lmforge.errors import DataError
from lmforge.train.data import lm_data, open_dataset


def _dataset(directory: Path, valid_tokens: int) -> Path:
    directory.mkdir()
    splits = {}
    for name, count in (("train", 40), ("valid", valid_tokens), ("test", 0)):
        np.arange(count, dtype=np.uint16).tofile(directory / f"{name}.bin")
        splits[name] = {"file": f"{name}.bin", "tokens": count, "documents": 1, "sha256": "0"}
        splits[name]["words"] = count // 2
    DatasetManifest.write(
        directory,
        {
            "format": "lmforge.dataset/1",
            "dtype": "uint16",
            "splits": splits,
            "tokenizer": {"file": "tokenizer.json", "sha256": "t", "end_of_text_id": 0},
        },
    )
    return directory


def test_an_empty_valid_split_is_refused_when_the_dir_is_opened(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has an empty valid split"):
        open_dataset(_dataset(tmp_path / "ds", valid_tokens=0))


def test_the_splits_come_from_the_one_manifest_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _dataset(tmp_path / "ds", valid_tokens=20)
    reads = []
    real = DatasetManifest.read

    def counting(path: Path) -> DatasetManifest:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(DatasetManifest, "read", counting)
    data = lm_data(open_dataset(directory), context_length=8, seed=0, windows="sequential")
    assert reads == [directory]
    assert (len(data.train), data.test, data.words("valid")) == (5, None, 10)
    lineage = data.lineage()
    assert lineage.path == str(directory) and lineage.tokenizer_sha256 == "t"
