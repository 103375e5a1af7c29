"""Runs that a killed `registry register` left behind. A registration logs the model dir to a
run before it creates the version; a SIGKILL in between leaves the run RUNNING with part of the
dir as its artifacts. Each registration run records the process and host that own it, so the
next registration can tell a dead owner's run (mark it FAILED, delete its artifacts) from a
concurrent registration that is still copying (left alone)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

log = logging.getLogger(__name__)
PID_TAG = "lmforge.register.pid"
HOST_TAG = "lmforge.register.host"
CLEANED_TAG = "lmforge.register.cleaned"


def owner_tags() -> dict[str, str]:
    """Tags of a new registration run naming this process as its owner."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _dead_owner(tags: dict[str, str]) -> bool:
    """Whether the run's owner is known to be gone. A run from another host, or one without
    owner tags, cannot be judged from here and is left as it is."""
    if tags.get(HOST_TAG) != socket.gethostname():
        return False
    pid = tags.get(PID_TAG, "")
    return pid.isdigit() and not _alive(int(pid))


def clean_stale_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark every registration run of a dead owner FAILED and delete its partial artifacts;
    returns their run ids."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    cleaned = []
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in running:
        if not _dead_owner(run.data.tags):
            continue
        run_id = str(run.info.run_id)
        repository: Any = get_artifact_repository(run.info.artifact_uri)  # mlflow: untyped
        repository.delete_artifacts()
        client.set_tag(
            run_id, CLEANED_TAG, "its registration was killed; partial artifacts deleted"
        )
        client.set_terminated(run_id, status="FAILED")
        log.warning("run %s of a killed registration: marked FAILED, its artifacts deleted", run_id)
        cleaned.append(run_id)
    return cleaned
