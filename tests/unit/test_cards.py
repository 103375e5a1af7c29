"""lmforge.json and manifest.json through their one reader/writer (`lmforge.cards`), and the
one model-reference resolver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cards import CARD, DatasetLineage, DatasetManifest, Lineage, ModelCard
from lmforge.errors import DataError, ModelError
from lmforge.fsutil import sha256_file, write_json_atomic
from lmforge.registry.resolve import resolve


def _model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


def test_a_card_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    """The dict the five writers used to assemble, written the old way, gives the same bytes."""
    directory = _model_dir(tmp_path)
    parent = Lineage.of("models:/base@production", None, "distilled", student_init={"init": "x"})
    card = ModelCard(
        task="lm",
        parent=parent,
        distillation={"temperature": 2.0},
        dataset=DatasetLineage("data/ptb", "a" * 64, "b" * 64),
        context_length=64,
        training_config={"model_size": "tiny"},
        metrics={"valid_loss": 1.25},
        mlflow_run_id="run1",
    ).write(directory)
    files = {
        "config.json": sha256_file(directory / "config.json"),
        "model.safetensors": sha256_file(directory / "model.safetensors"),
    }
    old = {
        "format": "lmforge.model/1",
        "task": "lm",
        "parent": {
            "model": "models:/base@production",
            "model_sha256": None,
            "mlflow_run_id": None,
            "relation": "distilled",
            "student_init": {"init": "x"},
        },
        "distillation": {"temperature": 2.0},
        "dataset": {"path": "data/ptb", "manifest_sha256": "a" * 64, "tokenizer_sha256": "b" * 64},
        "context_length": 64,
        "training_config": {"model_size": "tiny"},
        "metrics": {"valid_loss": 1.25},
        "mlflow_run_id": "run1",
        "files": files,
    }
    expected = tmp_path / "old.json"
    write_json_atomic(expected, old)
    assert (directory / CARD).read_bytes() == expected.read_bytes()
    assert card.files == files
    assert ModelCard.read(directory) == card


def test_a_task_card_leaves_out_what_the_task_lacks(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    ModelCard(task="classification", labels=["neg", "pos"]).write(directory)
    written = json.loads((directory / CARD).read_text())
    assert "dataset" not in written and "context_length" not in written and "prompt" not in written
    assert written["labels"] == ["neg", "pos"] and written["parent"] is None


def test_keys_written_by_other_tools_survive_a_rewrite(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    ModelCard().write(directory)
    raw = json.loads((directory / CARD).read_text())
    write_json_atomic(directory / CARD, {**raw, "notes": "kept"})
    card = ModelCard.read(directory)
    assert card is not None and card.extra == {"notes": "kept"}
    card.write(directory)
    assert json.loads((directory / CARD).read_text())["notes"] == "kept"


def test_a_card_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    assert ModelCard.read(directory) is None
    (directory / CARD).write_text('{"format": "other"}')
    with pytest.raises(ModelError, match="not an lmforge model card"):
        ModelCard.read(directory)
    (directory / CARD).write_text("{")
    with pytest.raises(ModelError, match="is corrupt"):
        ModelCard.read(directory)


def _manifest() -> dict[str, object]:
    return {
        "format": "lmforge.dataset/1",
        "dtype": "uint16",
        "tokenizer": {"file": "tokenizer.json", "sha256": "t" * 64, "end_of_text_id": 0},
        "splits": {
            "train": {"file": "train.bin", "tokens": 10, "documents": 2, "sha256": "c" * 64},
            "valid": {
                "file": "valid.bin",
                "tokens": 4,
                "documents": 1,
                "sha256": "d" * 64,
                "words": 3,
            },
        },
    }


def test_a_manifest_reads_back_typed(tmp_path: Path) -> None:
    written = DatasetManifest.write(tmp_path, _manifest())
    manifest = DatasetManifest.read(tmp_path)
    assert manifest == written
    assert manifest.sha256 == sha256_file(tmp_path / "manifest.json")
    assert manifest.tokenizer_file == tmp_path / "tokenizer.json"
    assert (manifest.dtype, manifest.end_of_text_id, manifest.canaries) == ("uint16", 0, None)
    assert manifest.split("valid").words == 3 and manifest.split("train").words is None
    assert manifest.split_path("train") == tmp_path / "train.bin"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "it has no manifest.json"),
        (lambda d: (d.mkdir(), (d / "manifest.json").write_text("{")), "is corrupt"),
        (
            lambda d: (d.mkdir(), (d / "manifest.json").write_text('{"format": 1}')),
            "not an lmforge dataset manifest",
        ),
    ],
)
def test_a_bad_dataset_dir_is_named(tmp_path: Path, setup, message: str) -> None:
    directory = tmp_path / "ds"
    setup(directory)
    with pytest.raises(DataError, match=message):
        DatasetManifest.read(directory)


def test_the_resolver_takes_dirs_and_hub_names_only_where_allowed(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    found = resolve(str(directory))
    assert (found.path, found.name, found.version) == (directory, "model", None)
    assert resolve("gpt2", hub=True).location == "gpt2"
    with pytest.raises(ModelError, match="model dir gpt2 does not exist"):
        resolve("gpt2")
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "missing"), hub=True)
