"""`registry register` keeps a version's training config whole, however long, so that
`registry show` and `diff` can always parse it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cards import ModelCard
from lmforge.registry.register import CONFIG_TAG, config_tags, stored_training_config, tags_for
from tests.conftest import build_model_dir

# MLflow refuses a model version tag value longer than this.
TAG_LIMIT = 5000


def long_config() -> dict[str, object]:
    config: dict[str, object] = {f"option_{i:03d}": "x" * 40 for i in range(150)}
    config["data"] = "/data/set"
    assert len(json.dumps(config, sort_keys=True)) > 5000
    return config


def test_a_short_config_keeps_its_single_tag() -> None:
    config = {"model_size": "tiny", "learning_rate": 0.001}
    tags = config_tags(config)
    assert tags == {CONFIG_TAG: json.dumps(config, sort_keys=True)}
    assert stored_training_config(tags) == config


def test_a_config_over_5000_characters_is_stored_whole() -> None:
    config = long_config()
    card = ModelCard(files={"model.safetensors": "ab" * 32}, training_config=config)
    tags = tags_for(card, None)
    assert all(len(value) <= TAG_LIMIT for value in tags.values())
    assert stored_training_config(tags) == config


def test_a_config_cut_off_by_an_older_version_is_shown_as_text() -> None:
    text = json.dumps(long_config(), sort_keys=True)[:4900]
    assert stored_training_config({CONFIG_TAG: text}) == {"truncated": text}


def test_registry_show_parses_a_long_config_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real embedded MLflow store: register, then describe the version."""
    from lmforge.registry.info import describe
    from lmforge.registry.refs import parse_ref
    from lmforge.registry.register import register
    from lmforge.registry.store import client
    from lmforge.registry.versions import get_version

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model_dir = build_model_dir(tmp_path / "model")
    config = long_config()
    ModelCard(training_config=config, metrics={"valid_loss": 1.5}).write(model_dir)
    version = register(model_dir, "long")
    shown = describe(get_version(client(), parse_ref(f"models:/long/{version.version}")))
    assert shown["config"] == config
