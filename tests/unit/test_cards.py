"""lmforge.json and manifest.json through their one reader/writer (`lmforge.cards`), and the
one model-reference resolver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cards import CARD, DatasetLineage, DatasetManifest, Lineage, ModelCard
from lmforge.errors import DataError, ModelError
from lmforge.fsutil import sha256_file, write_json_atomic
from lmforge.modelio import verified_card, verify_model_dir
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


def test_the_resolver_takes_hub_models_only_with_hf_and_only_where_allowed(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    found = resolve(str(directory))
    assert (found.path, found.name, found.version, found.hub) == (directory, "model", None, False)
    hub = resolve("hf:gpt2", hub=True)
    assert (hub.location, hub.hub) == ("gpt2", True)
    with pytest.raises(ModelError, match="hub models cannot be used here"):
        resolve("hf:gpt2")
    # A bare name or a mistyped path is a missing dir, never a hub lookup.
    for typo in ("gpt2", "mymodel", "models/typo"):
        with pytest.raises(ModelError, match=f"model dir {typo} does not exist") as caught:
            resolve(typo, hub=True)
        assert "hf:NAME" in caught.value.one_line()
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "missing"), hub=True)


def _carded(tmp_path: Path) -> Path:
    directory = _model_dir(tmp_path)
    (directory / "tokenizer.json").write_text("{}")
    ModelCard().write(directory)
    return directory


def test_a_file_the_card_does_not_list_is_refused(tmp_path: Path) -> None:
    """An added special_tokens_map.json changed the loaded tokenizer's EOS: unlisted files are
    refused by name, in subdirs too."""
    directory = _carded(tmp_path)
    assert verified_card(directory).files.keys() == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    }
    (directory / "special_tokens_map.json").write_text('{"eos_token": "the"}')
    with pytest.raises(ModelError, match=r"special_tokens_map\.json is not listed with its sha256"):
        verified_card(directory)
    (directory / "special_tokens_map.json").unlink()
    (directory / "sub").mkdir()
    (directory / "sub" / "added.json").write_text("{}")
    with pytest.raises(ModelError, match=r"sub/added\.json is not listed"):
        verify_model_dir(directory)


@pytest.mark.parametrize("listed", ["../../etc/hostname", "/etc/hostname", "a/../../x", "link"])
def test_card_paths_stay_inside_the_dir(tmp_path: Path, listed: str) -> None:
    """A card listing `../../etc/hostname` had that file read and hashed."""
    directory = _carded(tmp_path)
    outside = tmp_path / "secret"
    outside.write_text("secret")
    raw = json.loads((directory / CARD).read_text())
    raw["files"][listed] = sha256_file(outside)
    write_json_atomic(directory / CARD, raw)
    if listed == "link":
        (directory / "link").symlink_to(outside)
    with pytest.raises(ModelError, match=r"not a path inside the dir|symlink out of the model dir"):
        verified_card(directory)


def test_a_symlink_out_of_the_dir_is_refused_even_unverified(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "vocab.json").write_text("{}")
    (directory / "vocab").symlink_to(outside)
    with pytest.raises(ModelError, match="symlink out of the model dir"):
        verify_model_dir(directory, unverified=True)
    with pytest.raises(ModelError, match="symlink out of the model dir"):
        ModelCard().write(directory)


def test_a_dir_without_a_card_loads_only_unverified(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    with pytest.raises(ModelError, match=r"has no lmforge\.json") as caught:
        verify_model_dir(directory)
    assert "--unverified" in caught.value.one_line()
    assert verify_model_dir(directory, unverified=True) is None
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="pickle weights"):
        verify_model_dir(directory, unverified=True)
