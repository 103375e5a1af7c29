"""A dataset dir, opened and validated once per run: its manifest, and its splits as the torch
Datasets that language-model training (train, distill, tune trials) feeds the Trainer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmforge.cards import DatasetLineage, DatasetManifest
from lmforge.errors import DataError
from lmforge.train.dataset import PackedTokens


def open_dataset(dataset_dir: Path) -> DatasetManifest:
    """The dir's manifest, checked for what training needs (a valid split to evaluate on)."""
    manifest = DatasetManifest.read(dataset_dir)
    if manifest.split("valid").tokens < 2:
        raise DataError(
            f"{dataset_dir} has an empty valid split: training needs one to evaluate on",
            hint="prepare more data, or give --split with a larger valid fraction",
        )
    return manifest


@dataclass
class LmData:
    """The splits of a dataset dir as torch Datasets, plus what metrics need."""

    manifest: DatasetManifest
    train: PackedTokens
    valid: PackedTokens
    train_sample: PackedTokens
    test: PackedTokens | None

    @property
    def dataset_dir(self) -> Path:
        return self.manifest.directory

    def words(self, split: str) -> int | None:
        return self.manifest.split(split).words

    def lineage(self) -> DatasetLineage:
        """How a model card names the data it was trained on."""
        return DatasetLineage(
            path=str(self.dataset_dir),
            manifest_sha256=self.manifest.sha256,
            tokenizer_sha256=self.manifest.tokenizer_sha256,
        )


def lm_data(manifest: DatasetManifest, context_length: int, seed: int, windows: str) -> LmData:
    """Windows of `context_length` tokens over each split (`windows` orders the train split)."""

    def split(name: str, mode: str, limit: int | None = None) -> PackedTokens:
        return PackedTokens(
            manifest.split_path(name),
            manifest.dtype,
            context_length,
            mode=mode,
            seed=seed,
            pad_id=manifest.end_of_text_id,
            limit=limit,
        )

    valid = split("valid", "eval")
    return LmData(
        manifest=manifest,
        train=split("train", windows),
        valid=valid,
        # The train-valid gap is measured on as many train blocks as valid has.
        train_sample=split("train", "eval", limit=len(valid)),
        test=split("test", "eval") if manifest.split("test").tokens >= 2 else None,
    )
