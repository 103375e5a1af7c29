"""Where runs and models live: `$MLFLOW_TRACKING_URI` when set (an MLflow server at scale), else
the embedded default `sqlite:///$LMFORGE_HOME/mlflow.db` with artifacts under
`$LMFORGE_HOME/artifacts` (`LMFORGE_HOME` defaults to `./.lmforge`), created on first use."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lmforge.errors import RegistryError

log = logging.getLogger(__name__)


def lmforge_home() -> Path:
    return Path(os.environ.get("LMFORGE_HOME", ".lmforge")).resolve()


def embedded_uri() -> str:
    return f"sqlite:///{lmforge_home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri()


def use_store(experiment: str) -> str:
    """Point mlflow at our store and make sure `experiment` exists; returns its id."""
    import mlflow

    # In the embedded store artifacts go under $LMFORGE_HOME; a server decides its own.
    embedded = tracking_uri() == embedded_uri()
    use_store_uri()
    artifacts = (lmforge_home() / "artifacts").as_uri() if embedded else None
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(mlflow.create_experiment(experiment, artifact_location=artifacts))
    except mlflow.exceptions.MlflowException:
        # Another process (a concurrent register or train) created it since we looked.
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            raise
        return str(found.experiment_id)


def client() -> Any:  # an mlflow.MlflowClient; mlflow ships no type information
    """A client on our store; an unreachable tracking server is a RegistryError naming it."""
    import mlflow

    use_store_uri()
    client = mlflow.MlflowClient()
    try:
        client.search_registered_models(max_results=1)
    except Exception as exc:  # mlflow/requests raise many types for an unreachable server
        raise RegistryError(
            f"cannot reach the model registry at {tracking_uri()}: {type(exc).__name__}",
            hint="start the MLflow server, or unset MLFLOW_TRACKING_URI to use the embedded store",
        ) from exc
    return client


def use_store_uri() -> None:
    import mlflow

    # MLflow logs a migration banner on first use of a SQLite store; keep our output clean.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Its per-file download bars would interleave with our output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if tracking_uri() == embedded_uri():
        lmforge_home().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
