"""The MLflow `transformers` flavour of a registered version. MLflow writes its files (MLmodel
with the signature, the input example, the pinned requirements, the tokenizer component) into
a scratch dir; we keep all of them but its copy of the weights, and point MLmodel's model binary
at the verified model files they are logged beside. A version's artifacts are then both the
files `registry pull` verifies one by one (the registered card lists MLflow's files too) and an
MLflow model that `mlflow.transformers.load_model("models:/NAME@ALIAS")` loads, with no second
copy of the weights."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from lmforge.cards import CARD, ModelCard, file_hashes
from lmforge.fsutil import write_json_atomic

log = logging.getLogger(__name__)
GENERATION, CLASSIFICATION = "text-generation", "text-classification"
EXAMPLE = "The quick brown fox"
# What the MLflow model needs at load time, pinned to what wrote it (MLflow's own inference of
# these imports optional packages such as torchvision, which lmforge does not install).
REQUIREMENTS = ("mlflow", "transformers", "torch", "tokenizers", "safetensors")
# MLmodel's key for the dir (relative to the MLflow model) holding save_pretrained's files.
MODEL_BINARY = "model_binary"


def pinned_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def signature(task: str) -> Any:
    """Text in; generated text out (with `max_new_tokens` as a parameter), or a label with its
    probability for a classifier (what MLflow's pipeline wrapper returns for each task)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    if task == CLASSIFICATION:
        outputs = Schema([ColSpec("string", "label"), ColSpec("double", "score")])
        return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=outputs)
    params = ParamSchema([ParamSpec("max_new_tokens", "long", 32)])
    return ModelSignature(
        inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("string")]), params=params
    )


def write_flavor(model_dir: Path, into: Path) -> str:
    """Write MLflow's transformers-flavour files for the verified `model_dir` into the empty
    dir `into` (all but the weights, which stay `model_dir`'s); returns the pipeline task."""
    import mlflow.transformers
    import transformers
    from mlflow.models import Model

    from lmforge.hf import load_pretrained

    # transformers' overloads want the task as a literal; ours is one of two strings.
    make_pipeline: Any = transformers.pipeline
    # An absolute path as the model's name: MLflow looks a model card and a license up on the
    # Hugging Face hub by that name, and a path is no valid repo id, so nothing leaves the host.
    model, tokenizer, _ = load_pretrained(str(model_dir.resolve()), "auto")
    classifier = type(model).__name__.endswith("ForSequenceClassification")
    task = CLASSIFICATION if classifier else GENERATION
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "mlflow-model"
        mlflow.transformers.save_model(
            make_pipeline(task, model=model, tokenizer=tokenizer),
            str(saved),
            task=task,
            signature=signature(task),
            input_example=EXAMPLE,
            pip_requirements=pinned_requirements(),
        )
        mlmodel = Model.load(str(saved / "MLmodel"))
        binary = mlmodel.flavors["transformers"].get(MODEL_BINARY, "model")
        shutil.rmtree(saved / binary)
        mlmodel.flavors["transformers"][MODEL_BINARY] = "."
        mlmodel.save(str(saved / "MLmodel"))
        for item in saved.iterdir():
            if (model_dir / item.name).exists():  # the model's own file (a LICENSE.txt) wins
                log.info("keeping the model's %s over MLflow's", item.name)
                continue
            shutil.move(str(item), into / item.name)
    return task


def registered_card(card: ModelCard, flavor_dir: Path) -> ModelCard:
    """`card` listing MLflow's files as well: what `registry pull` and every later load of the
    pulled dir verify against."""
    registered = ModelCard.from_json(json.loads(json.dumps(card.to_json())))
    registered.files = {**card.files, **file_hashes(flavor_dir)}
    write_json_atomic(flavor_dir / CARD, registered.to_json())
    return registered
