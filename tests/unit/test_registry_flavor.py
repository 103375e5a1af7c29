"""A registered version is an MLflow `transformers` model too: through a real embedded MLflow
store, `mlflow.transformers.load_model("models:/NAME@production")` gives a pipeline that runs,
while `registry pull` still verifies every file (MLflow's included) against its sha256. (About
8 s per registration on a loaded 2-core machine, 3 of them MLflow checking its requirements.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config.registry import PromoteConfig
from tests.conftest import build_model_dir
from tests.unit.test_serve_classifier import LABELS, build_classifier


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def register_and_promote(model_dir: Path, name: str) -> None:
    from lmforge.registry.promote import promote
    from lmforge.registry.register import register

    version = register(model_dir, name)
    promote(PromoteConfig(name=name, version=str(version.version)))


def test_a_promoted_version_loads_as_a_text_generation_pipeline(store: Path) -> None:
    import mlflow.transformers
    from mlflow.models import Model

    from lmforge.errors import RegistryError
    from lmforge.registry.pull import pull

    model_dir = build_model_dir(store / "model")
    register_and_promote(model_dir, "tiny")
    generator = mlflow.transformers.load_model("models:/tiny@production")
    assert type(generator).__name__ == "TextGenerationPipeline"
    out = generator("the cat", max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"].startswith("the cat") and len(out[0]["generated_text"]) > 7
    local, _ = pull("models:/tiny@production")  # our verified path still serves it
    assert (local / "MLmodel").is_file() and (local / "model.safetensors").is_file()
    mlmodel = Model.load(str(local / "MLmodel"))
    assert mlmodel.signature is not None and mlmodel.saved_input_example_info is not None
    assert mlmodel.flavors["transformers"]["task"] == "text-generation"
    # One copy of the weights: MLflow's model binary is the verified files themselves.
    assert list(local.rglob("*.safetensors")) == [local / "model.safetensors"]
    # MLflow's files are verified like the model's: a changed MLmodel is caught.
    (local / "MLmodel").write_text((local / "MLmodel").read_text() + "# changed\n")
    with pytest.raises(RegistryError, match="MLmodel does not match its registered sha256"):
        pull("models:/tiny@production")


def test_a_classifier_loads_as_text_classification(store: Path) -> None:
    import mlflow.transformers

    classifier = build_classifier(build_model_dir(store / "lm"), store / "classifier")
    register_and_promote(classifier, "topics")
    pipe = mlflow.transformers.load_model("models:/topics@production")
    assert type(pipe).__name__ == "TextClassificationPipeline"
    (answer,) = pipe("the cat sat on the mat")
    assert answer["label"] in LABELS and 0 < answer["score"] <= 1
