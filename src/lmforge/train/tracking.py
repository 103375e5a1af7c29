"""Every training run is an MLflow run: params, per-step metrics (`MlflowMetrics` callback),
the dataset manifest as an input, and the final model dir as artifacts."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmforge.cards import MANIFEST
from lmforge.fsutil import sha256_file, write_text_atomic

RUN_ID_FILE = "mlflow_run_id"


def _flat(params: dict[str, Any]) -> dict[str, str]:
    # MLflow params are strings of at most 6000 characters.
    return {
        k: (json.dumps(v) if isinstance(v, list | dict) else str(v))[:6000]
        for k, v in params.items()
    }


@contextlib.contextmanager
def tracked_run(
    *,
    enabled: bool,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    state_dir: Path,
    dataset_dir: Path | None = None,
    parent_run_id: str | None = None,
) -> Iterator[str | None]:
    """Start (or, when `state_dir` remembers one, resume) an MLflow run; yields its id."""
    if not enabled:
        yield None
        return
    import mlflow

    from lmforge.registry.store import use_store

    experiment_id = use_store(experiment)
    remembered = state_dir / RUN_ID_FILE
    run_id = remembered.read_text().strip() if remembered.is_file() else None
    tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
    with mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else experiment_id,
        run_name=None if run_id else run_name,
        nested=parent_run_id is not None,
        tags=tags,
    ) as run:
        state_dir.mkdir(parents=True, exist_ok=True)
        # Atomic: a resumed run reads this back; a torn id would resume nothing (or fail).
        write_text_atomic(remembered, run.info.run_id)
        if run_id is None:
            mlflow.log_params(_flat(params))
            if dataset_dir is not None:
                log_dataset(dataset_dir)
        yield run.info.run_id


def log_dataset(dataset_dir: Path) -> None:
    """The dataset manifest as the run's input (name, digest = manifest sha256, source path)."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    manifest = dataset_dir / MANIFEST
    if not manifest.is_file():
        return
    with warnings.catch_warnings():
        # Two registered source classes claim local paths; either one is right here.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(dataset_dir.resolve()))
    # mlflow marks Dataset.profile abstract without ABCMeta; MetaDataset is built as it is.
    dataset = MetaDataset(  # type: ignore[abstract]
        source, name=dataset_dir.name, digest=sha256_file(manifest)[:16]
    )
    mlflow.log_input(dataset, context="training")
    mlflow.log_artifact(str(manifest), artifact_path="dataset")


def log_model_dir(model_dir: Path, metrics: dict[str, float]) -> None:
    import math

    import mlflow

    mlflow.log_metrics({f"final_{k}": v for k, v in metrics.items() if math.isfinite(v)})
    mlflow.log_artifacts(str(model_dir), artifact_path="model")
