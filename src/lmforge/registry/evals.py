"""What `lmforge eval` records about a registered version, and what `registry promote` reads
back. A version's evaluation lives with the version, not with whichever run trained it:

- every task metric as the tag `lmforge.metric.TASK.METRIC`, next to the card's metrics (the
  gate reads both through `version_metrics`; it calls this one `TASK.METRIC`);
- `lmforge.eval.TASK`: a JSON record of what measured it (the eval arguments, data sha256,
  report dir, model sha256, when), from which a missing metric's command is rebuilt;
- `eval.TASK.METRIC` and the report dir on the version's MLflow run (`ModelVersion.run_id`,
  the run holding its artifacts).

A model dir that is no version logs to its training run only (`log_to_run`)."""

from __future__ import annotations

import json
import logging
import math
import shlex
import time
from pathlib import Path
from typing import Any

from lmforge.registry.refs import PREFIX
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import TAG

log = logging.getLogger(__name__)
EVAL_TAG = f"{TAG}eval."
METRIC_TAG = f"{TAG}metric."
RUN_PREFIX = "eval."


def version_run_id(name: str, version: str) -> str | None:
    """The run of a registered version: the one holding its artifacts."""
    run_id = store_client().get_model_version(name, version).run_id
    return str(run_id) if run_id else None


def finite_metrics(report: dict[str, Any]) -> dict[str, float]:
    """TASK.METRIC: value for every finite task metric of a report."""
    return {
        f"{task}.{metric}": float(value)
        for task, metrics in report["tasks"].items()
        for metric, value in metrics.items()
        if isinstance(value, int | float) and math.isfinite(value)
    }


def record_eval(
    name: str, version: str, report: dict[str, Any], directory: Path, args: list[str]
) -> None:
    """Tag the version with the report's metrics and their record, then log them to its run.
    Refused (a warning) when the report's weights are not the version's: tags must only ever
    describe the model they sit on."""
    client = store_client()
    found = client.get_model_version(name, version)
    registered = found.tags.get(f"{TAG}model_sha256")
    evaluated = report["model"].get("model_sha256")
    if registered and evaluated and registered != evaluated:
        log.warning(
            "not recorded on %s/%s: its weights are %s, the evaluated ones %s",
            name,
            version,
            registered[:12],
            evaluated[:12],
        )
        return
    for metric, value in finite_metrics(report).items():
        client.set_model_version_tag(name, version, f"{METRIC_TAG}{metric}", repr(value))
    for task, details in report["details"].items():
        record = {
            "args": args,
            "report": str(directory.resolve()),
            "data_sha256": details.get("data", {}).get("sha256", ""),
            "model_sha256": evaluated or "",
            "seconds": details.get("seconds"),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        client.set_model_version_tag(name, version, f"{EVAL_TAG}{task}", json.dumps(record))
    if found.run_id:
        log_to_run(str(found.run_id), report, directory)


def log_to_run(run_id: str, report: dict[str, Any], directory: Path) -> None:
    """Metrics `eval.TASK.METRIC` and the report dir as artifacts of a run. A store that is
    gone or unreachable costs a warning, not the evaluation."""
    try:
        client = store_client()
        for metric, value in finite_metrics(report).items():
            client.log_metric(run_id, f"{RUN_PREFIX}{metric}", value)
        client.log_artifacts(run_id, str(directory), artifact_path=f"eval/{directory.name}")
    except Exception as exc:  # mlflow raises many types for a missing run or store
        log.warning("results not logged to MLflow run %s: %s", run_id, exc)


def eval_records(version: Any) -> dict[str, dict[str, Any]]:
    """TASK: its `lmforge.eval.TASK` record, for every task evaluated on `version`."""
    records = {}
    for key, value in version.tags.items():
        if key.startswith(EVAL_TAG):
            try:
                records[key[len(EVAL_TAG) :]] = json.loads(value)
            except json.JSONDecodeError:
                log.warning(
                    "unreadable eval record %s on %s/%s", key, version.name, version.version
                )
    return records


def eval_command(name: str, version: str, metric: str, suite: str, holder: Any | None) -> str:
    """The `lmforge eval` command that measures `metric` (TASK.METRIC) on NAME/VERSION: with
    the gate rule's `suite`, else the arguments that measured the holder's value."""
    task = metric.rsplit(".", 1)[0]
    args = ["--suite", suite] if suite else None
    if args is None and holder is not None:
        args = eval_records(holder).get(task, {}).get("args")
    if not args:
        args = ["--suite", "SUITE.yaml"]
    report = f"reports/{name}-v{version}"
    command = shlex.join(
        ["lmforge", "eval", f"{PREFIX}{name}/{version}", *args, "--report", report]
    )
    return (
        command
        if args[-1] != "SUITE.yaml"
        else f"{command} (SUITE.yaml: a suite with a task {task!r})"
    )
