"""`registry register`: verify a model dir, log it as artifacts of a new run together with its
MLflow `transformers` flavour (so `mlflow.transformers.load_model("models:/NAME@ALIAS")` loads a
version), and only then create the model version, tagged with its sha256s (MLflow's files
included), dataset hash, parent version, training run, metrics and training config.

A model version's tag holds at most 5,000 characters, so a training config whose JSON is
longer is stored whole across numbered tags (`training_config.0`, `.1`, ...) and joined back
by `stored_training_config`; a shorter one keeps the single `training_config` tag."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from lmforge.cards import CARD, WEIGHTS, ModelCard
from lmforge.errors import RegistryError
from lmforge.modelio import verified_card
from lmforge.registry.flavor import registered_card, write_flavor
from lmforge.registry.query import by_tag
from lmforge.registry.refs import check_name
from lmforge.registry.stale import clean_stale_runs, owner_tags
from lmforge.registry.store import client as store_client
from lmforge.registry.store import use_store
from lmforge.registry.versions import TAG

log = logging.getLogger(__name__)
EXPERIMENT = "lmforge-registry"
RETRIES = 8
# Under MLflow's 5,000-character limit on a model version's tag value.
TAG_CHUNK = 4900
CONFIG_TAG = f"{TAG}training_config"
TRAINING_RUN_TAG = f"{TAG}training_run"


def _log_run(card: ModelCard, model_dir: Path) -> tuple[str, ModelCard]:
    """A new run holding the model dir's files and, beside them, its MLflow `transformers`
    flavour (see `registry.flavor`); returns the run id and the registered card, which lists
    both. The training run, when there is one, is named in a tag: its own artifacts are never
    written to, so two registrations of one run cannot write over each other's files."""
    import tempfile

    import mlflow

    experiment_id = use_store(EXPERIMENT)
    tags = {**owner_tags(), TRAINING_RUN_TAG: card.mlflow_run_id or ""}
    with tempfile.TemporaryDirectory() as tmp:
        flavor_dir = Path(tmp)
        started = time.perf_counter()
        task = write_flavor(model_dir, flavor_dir)
        registered = registered_card(card, flavor_dir)
        log.info("MLflow %s flavour written in %.1f s", task, time.perf_counter() - started)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"register {model_dir.name}", tags=tags
        ) as run:
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
            # Over the dir's own card: the registered one lists MLflow's files too.
            mlflow.log_artifacts(str(flavor_dir), artifact_path="model")
            return str(run.info.run_id), registered


def _parent_version(client: Any, card: ModelCard) -> str | None:
    """NAME/VERSION of the registered version holding the parent's weights, if any."""
    digest = card.parent.model_sha256 if card.parent else None
    if not digest:
        return None
    found = client.search_model_versions(by_tag(f"{TAG}model_sha256", digest))
    if not found:
        return None
    first = min(found, key=lambda v: (v.name, int(v.version)))
    return f"{first.name}/{first.version}"


def config_tags(config: dict[str, Any]) -> dict[str, str]:
    """The training config as JSON in one tag, or, when longer than a tag holds, in numbered
    chunks (the single tag is then empty, so a reader of the old layout sees no config rather
    than half of one)."""
    text = json.dumps(config, sort_keys=True)
    if len(text) <= TAG_CHUNK:
        return {CONFIG_TAG: text}
    chunks = [text[i : i + TAG_CHUNK] for i in range(0, len(text), TAG_CHUNK)]
    return {CONFIG_TAG: "", **{f"{CONFIG_TAG}.{i}": chunk for i, chunk in enumerate(chunks)}}


def stored_training_config(tags: dict[str, str]) -> dict[str, Any]:
    """The training config that `config_tags` stored in a version's tags."""
    text = tags.get(CONFIG_TAG, "")
    if f"{CONFIG_TAG}.0" in tags:
        parts: list[str] = []
        while (part := tags.get(f"{CONFIG_TAG}.{len(parts)}")) is not None:
            parts.append(part)
        text = "".join(parts)
    try:
        config = json.loads(text or "{}")
    except json.JSONDecodeError:
        # Versions registered before configs were stored whole hold a cut-off JSON text.
        log.warning("the stored training config is truncated; showing it as text")
        return {"truncated": text}
    return config if isinstance(config, dict) else {}


def tags_for(card: ModelCard, parent: str | None) -> dict[str, str]:
    files = card.files
    tags = {
        f"{TAG}files_sha256": json.dumps(files, sort_keys=True),
        f"{TAG}model_sha256": files.get(WEIGHTS, ""),
        f"{TAG}task": card.task,
        f"{TAG}dataset_sha256": card.dataset.manifest_sha256 if card.dataset else "",
        f"{TAG}parent": parent or "",
        f"{TAG}parent_relation": card.parent.relation if card.parent else "",
        TRAINING_RUN_TAG: card.mlflow_run_id or "",
        **config_tags(card.training_config),
    }
    for name, value in card.metrics.items():
        if isinstance(value, int | float) and math.isfinite(value):
            tags[f"{TAG}metric.{name}"] = repr(float(value))
    return tags


def register(model_dir: Path, name: str) -> Any:
    """Register `model_dir` as a new version of `name`; returns the ModelVersion. Only a dir
    with a card registers (there is no `--unverified` here): a version's recorded sha256s are
    what every later pull is checked against, so they must come from a verified dir."""
    from mlflow.exceptions import MlflowException

    check_name(name)
    if model_dir.is_dir() and not (model_dir / CARD).is_file():
        raise RegistryError(
            f"{model_dir} has no {CARD}, so its files cannot be verified",
            hint="register model dirs written by lmforge train/distill",
        )
    card = verified_card(model_dir)
    # registry/store.client is not annotated yet; its MlflowClient is used untyped here.
    open_client: Any = store_client
    client = open_client()
    clean_stale_runs(client, use_store(EXPERIMENT))
    run_id, registered = _log_run(card, model_dir)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model {name!r}: {exc.message}") from exc
    tags = tags_for(registered, _parent_version(client, card))
    # Concurrent registrations of one name can collide on the next version number in SQLite;
    # each retry reads the new highest number.
    attempt = 0
    while True:
        try:
            return client.create_model_version(name, source, run_id=run_id, tags=tags)
        except MlflowException as exc:
            attempt += 1
            if attempt == RETRIES:
                raise RegistryError(f"cannot create a version of {name!r}: {exc.message}") from exc
            time.sleep(0.2 * attempt)
