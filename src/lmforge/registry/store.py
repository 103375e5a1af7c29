"""Where runs and models live: `$MLFLOW_TRACKING_URI` when set (an MLflow server at scale), else
the embedded default `sqlite:///$LMFORGE_HOME/mlflow.db` with artifacts under
`$LMFORGE_HOME/artifacts` (`LMFORGE_HOME` defaults to `./.lmforge`), created on first use."""

from __future__ import annotations

import logging
import os
from pathlib import Path

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

    # MLflow logs a migration banner on first use of a SQLite store; keep our output clean.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = tracking_uri()
    # In the embedded store artifacts go under $LMFORGE_HOME; a server decides its own.
    artifacts = (lmforge_home() / "artifacts").as_uri() if uri == embedded_uri() else None
    if artifacts:
        lmforge_home().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifacts)
