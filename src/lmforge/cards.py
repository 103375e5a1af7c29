"""The two files lmforge writes next to the data it describes, and their only readers and
writers: a model dir's `lmforge.json` (`ModelCard`: sha256 of every file, the parent model, the
dataset, training config, metrics) and a dataset dir's `manifest.json` (`DatasetManifest`).

Both are written atomically as sorted, indented JSON, the format these files have always had.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import DataError, ModelError
from lmforge.fsutil import sha256_file, write_json_atomic

CARD = "lmforge.json"
CARD_FORMAT = "lmforge.model/1"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "lmforge.dataset/1"
WEIGHTS = "model.safetensors"  # the one weights file a model dir may hold


def content_files(model_dir: Path) -> dict[str, Path]:
    """Every file of a model dir by its relative path, except the card and hidden files: what
    a card hashes and all that a verified dir may hold. A symlink whose target lies outside the
    dir is an error, since anything could be read through it."""
    root = model_dir.resolve()
    out: dict[str, Path] = {}
    for path in sorted(model_dir.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise ModelError(
                f"{path} is a symlink out of the model dir (to {path.resolve()})",
                hint="copy the file into the dir or remove the link",
            )
        if path.is_file() and path.name != CARD and not path.name.startswith("."):
            out[path.relative_to(model_dir).as_posix()] = path
    return out


def file_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every content file of the dir (relative paths)."""
    return {name: sha256_file(path) for name, path in content_files(model_dir).items()}


def _parse_json(path: Path, raw: bytes, error: type[DataError] | type[ModelError]) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is corrupt: {exc}") from exc


@dataclass(frozen=True)
class Lineage:
    """The model a model dir started from: its reference, weights' hash and MLflow run, and how
    this one was made from it ("fine-tuned", "distilled")."""

    model: str
    model_sha256: str | None
    mlflow_run_id: str | None
    relation: str = ""
    student_init: dict[str, Any] | None = None  # distillation: how the student was built

    @classmethod
    def of(cls, ref: str, card: ModelCard | None, relation: str, **extra: Any) -> Lineage:
        return cls(
            model=ref,
            model_sha256=card.files.get(WEIGHTS) if card else None,
            mlflow_run_id=card.mlflow_run_id if card else None,
            relation=relation,
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "mlflow_run_id": self.mlflow_run_id,
            "relation": self.relation,
        }
        if self.student_init is not None:
            out["student_init"] = self.student_init
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Lineage:
        return cls(
            model=str(raw.get("model", "")),
            model_sha256=raw.get("model_sha256"),
            mlflow_run_id=raw.get("mlflow_run_id"),
            relation=str(raw.get("relation", "")),
            student_init=raw.get("student_init"),
        )


@dataclass(frozen=True)
class DatasetLineage:
    """The dataset dir a model trained on, by path and the hashes of its manifest and tokenizer."""

    path: str
    manifest_sha256: str
    tokenizer_sha256: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DatasetLineage:
        return cls(
            path=str(raw.get("path", "")),
            manifest_sha256=str(raw.get("manifest_sha256", "")),
            tokenizer_sha256=str(raw.get("tokenizer_sha256", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "manifest_sha256": self.manifest_sha256,
            "tokenizer_sha256": self.tokenizer_sha256,
        }


# Keys of lmforge.json this class reads into typed fields; any other key is kept as it is.
_CARD_KEYS = {"format", "task", "labels", "prompt", "pair", "parent", "distillation", "dataset"}
_CARD_KEYS |= {"context_length", "training_config", "metrics", "mlflow_run_id", "files"}


@dataclass
class ModelCard:
    """A model dir's `lmforge.json`. Optional parts a task does not have are left out of the
    file (a classifier has `labels`, a matcher `labels` and its `pair` format — separator and
    target, "label" or "score" —, a summarizer its `prompt`, an LM its `dataset`)."""

    task: str = "lm"
    parent: Lineage | None = None
    files: dict[str, str] = field(default_factory=dict)
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    dataset: DatasetLineage | None = None
    context_length: int | None = None
    labels: list[str] | None = None
    prompt: str | None = None
    pair: dict[str, str] | None = None
    distillation: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by other tools

    @property
    def weights_sha256(self) -> str | None:
        return self.files.get(WEIGHTS)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": CARD_FORMAT,
            **self.extra,
            "task": self.task,
            "parent": self.parent.to_json() if self.parent else None,
            "training_config": self.training_config,
            "metrics": self.metrics,
            "mlflow_run_id": self.mlflow_run_id,
            "files": self.files,
        }
        optional = {
            "labels": self.labels,
            "prompt": self.prompt,
            "pair": self.pair,
            "distillation": self.distillation,
            "dataset": self.dataset.to_json() if self.dataset else None,
            "context_length": self.context_length,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelCard:
        dataset = raw.get("dataset")
        return cls(
            task=str(raw.get("task", "lm")),
            parent=Lineage.from_json(raw["parent"]) if raw.get("parent") else None,
            files=dict(raw.get("files") or {}),
            training_config=dict(raw.get("training_config") or {}),
            metrics=dict(raw.get("metrics") or {}),
            mlflow_run_id=raw.get("mlflow_run_id"),
            dataset=DatasetLineage.from_json(dataset) if isinstance(dataset, dict) else None,
            context_length=raw.get("context_length"),
            labels=raw.get("labels"),
            prompt=raw.get("prompt"),
            pair=raw.get("pair"),
            distillation=raw.get("distillation"),
            extra={k: v for k, v in raw.items() if k not in _CARD_KEYS},
        )

    def write(self, model_dir: Path) -> ModelCard:
        """Write `lmforge.json` over the dir's current files (hashing them into `files`)."""
        self.files = file_hashes(model_dir)
        write_json_atomic(model_dir / CARD, self.to_json())
        return self

    @classmethod
    def read(cls, model_dir: Path) -> ModelCard | None:
        """The dir's card, or None when it has none; a card that is not ours is an error."""
        path = model_dir / CARD
        if not path.is_file():
            return None
        raw = _parse_json(path, path.read_bytes(), ModelError)
        if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
            raise ModelError(f"{path} is not an lmforge model card ({CARD_FORMAT})")
        return cls.from_json(raw)


@dataclass(frozen=True)
class SplitEntry:
    """One split of a dataset dir: its token file, counts and hash."""

    file: str
    tokens: int
    documents: int
    sha256: str
    words: int | None = None


@dataclass(frozen=True)
class DatasetManifest:
    """A dataset dir's `manifest.json`. The typed properties are what training and evaluation
    read; `content` is the whole file, as `data prepare` wrote it (sources, stages, versions)."""

    directory: Path
    content: dict[str, Any]
    sha256: str  # of the manifest file itself: what a model card records of its data

    @property
    def dtype(self) -> str:
        return str(self.content["dtype"])

    @property
    def tokenizer_file(self) -> Path:
        return self.directory / str(self.content["tokenizer"]["file"])

    @property
    def tokenizer_sha256(self) -> str:
        return str(self.content["tokenizer"]["sha256"])

    @property
    def end_of_text_id(self) -> int:
        return int(self.content["tokenizer"]["end_of_text_id"])

    @property
    def canaries(self) -> dict[str, Any] | None:
        return self.content.get("canaries")

    def split(self, name: str) -> SplitEntry:
        entry = self.content["splits"][name]
        return SplitEntry(
            file=entry["file"],
            tokens=int(entry["tokens"]),
            documents=int(entry.get("documents", 0)),
            sha256=entry["sha256"],
            words=entry.get("words"),
        )

    def split_path(self, name: str) -> Path:
        return self.directory / self.split(name).file

    @classmethod
    def read(cls, dataset_dir: Path) -> DatasetManifest:
        """Read and sanity-check a dataset dir's manifest."""
        path = dataset_dir / MANIFEST
        if not dataset_dir.is_dir():
            raise DataError(f"dataset dir {dataset_dir} does not exist")
        if not path.is_file():
            raise DataError(f"{dataset_dir} is not a dataset dir: it has no {MANIFEST}")
        data = path.read_bytes()
        raw = _parse_json(path, data, DataError)
        if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
            raise DataError(f"{path} is not an lmforge dataset manifest (format {MANIFEST_FORMAT})")
        return cls(dataset_dir, raw, hashlib.sha256(data).hexdigest())

    @staticmethod
    def write(dataset_dir: Path, content: dict[str, Any]) -> DatasetManifest:
        """Write `manifest.json` (no timestamps: the same input gives the same bytes)."""
        write_json_atomic(dataset_dir / MANIFEST, content)
        return DatasetManifest(dataset_dir, content, sha256_file(dataset_dir / MANIFEST))
