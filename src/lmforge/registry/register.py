"""`registry register`: verify a model dir, log it as artifacts (to its training run when that
run is in this store, else to a new run), and only then create the model version, tagged with
its sha256s, dataset hash, parent version and metrics."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from lmforge.errors import RegistryError
from lmforge.modelio import verify_model_dir
from lmforge.registry.store import client as store_client
from lmforge.registry.store import use_store
from lmforge.registry.versions import TAG

log = logging.getLogger(__name__)
EXPERIMENT = "lmforge-registry"
RETRIES = 8


def _run_for(client: Any, card: dict[str, Any], model_dir: Path) -> str:
    """The run holding the model dir's artifacts: its training run when that run is in this
    store and logged exactly this model dir, else a new run that we log the dir to."""
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = card.get("mlflow_run_id")
    if run_id:
        try:
            if _logged_card(client, run_id) == (model_dir / "lmforge.json").read_bytes():
                return run_id
        except (MlflowException, OSError):
            log.info("training run %s does not hold this model here; logging a new run", run_id)
    experiment_id = use_store(EXPERIMENT)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"register {model_dir.name}"
    ) as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        return run.info.run_id


def _logged_card(client: Any, run_id: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, "model/lmforge.json", tmp)).read_bytes()


def _parent_version(client: Any, card: dict[str, Any]) -> str | None:
    """NAME/VERSION of the registered version holding the parent's weights, if any."""
    digest = (card.get("parent") or {}).get("model_sha256")
    if not digest:
        return None
    found = client.search_model_versions(f"tags.`{TAG}model_sha256` = '{digest}'")
    if not found:
        return None
    first = min(found, key=lambda v: (v.name, int(v.version)))
    return f"{first.name}/{first.version}"


def tags_for(card: dict[str, Any], parent: str | None) -> dict[str, str]:
    files = card["files"]
    tags = {
        f"{TAG}files_sha256": json.dumps(files, sort_keys=True),
        f"{TAG}model_sha256": files.get("model.safetensors", ""),
        f"{TAG}task": str(card.get("task", "lm")),
        f"{TAG}dataset_sha256": str((card.get("dataset") or {}).get("manifest_sha256", "")),
        f"{TAG}parent": parent or "",
        f"{TAG}parent_relation": str((card.get("parent") or {}).get("relation", "")),
        f"{TAG}training_config": json.dumps(card.get("training_config", {}), sort_keys=True)[:4900],
    }
    for name, value in (card.get("metrics") or {}).items():
        if isinstance(value, int | float) and math.isfinite(value):
            tags[f"{TAG}metric.{name}"] = repr(float(value))
    return tags


def register(model_dir: Path, name: str) -> Any:
    """Register `model_dir` as a new version of `name`; returns the ModelVersion."""
    from mlflow.exceptions import MlflowException

    card = verify_model_dir(model_dir)
    if card is None:
        raise RegistryError(
            f"{model_dir} has no lmforge.json, so its files cannot be verified",
            hint="register model dirs written by lmforge train/distill",
        )
    client = store_client()
    run_id = _run_for(client, card, model_dir)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model {name!r}: {exc.message}") from exc
    tags = tags_for(card, _parent_version(client, card))
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
