"""`lmforge eval MODEL --suite SUITE.yaml --report DIR [--baseline MODEL]`: run a suite's tasks
on a model (and on a baseline), write report.json (every number under tasks.<task>.<metric>,
next to the data's sha256, the model's sha256 and the settings), report.md and the plots, and
log the numbers to the model's MLflow run when it has one. With a baseline the report holds
the comparison, and the exit code says whether the candidate passed the suite's gate."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.config import to_dict
from lmforge.config.evaluate import EvalConfig, PerplexityTask
from lmforge.errors import DataError, LmforgeError
from lmforge.evaluate.classification import run_classification
from lmforge.evaluate.drift import drift_reference
from lmforge.evaluate.leakage import run_canary_exposure, run_extraction
from lmforge.evaluate.matching import run_matching
from lmforge.evaluate.perplexity import run_perplexity
from lmforge.evaluate.report import compare, markdown, plots
from lmforge.evaluate.result import TaskResult
from lmforge.evaluate.robustness import perturbation, ratios
from lmforge.evaluate.scoring import LoadedModel, load_for_eval
from lmforge.evaluate.suite import PATH_OPTIONS, Suite, TaskSpec, check_names, load_suite
from lmforge.evaluate.summarization import run_summarization
from lmforge.fsutil import atomic_dir, write_json_atomic
from lmforge.progress import progress_bar

log = logging.getLogger(__name__)

# Tasks that robustness can rerun on perturbed inputs.
PERTURBABLE: dict[str, Callable[..., TaskResult]] = {
    "perplexity": run_perplexity,
    "summarization": run_summarization,
    "classification": run_classification,
    "matching": run_matching,
}


def build_suite(cfg: EvalConfig) -> Suite:
    """The suite file's tasks plus one perplexity task per `--perplexity` input."""
    suite = load_suite(Path(cfg.suite)) if cfg.suite else Suite([])
    for path in cfg.perplexity:
        name = Path(path).stem if not Path(path).is_dir() else f"{Path(path).name}-test"
        options = PerplexityTask(data=path, context_length=cfg.context_length, stride=cfg.stride)
        suite.tasks.append(TaskSpec(name, "perplexity", options))
    check_names(suite, suite.source)
    return suite


def preflight(suite: Suite) -> None:
    """Missing data files fail before any model is loaded."""
    for spec in suite.tasks:
        for option in PATH_OPTIONS:
            path = getattr(spec.options, option, "")
            if path and not Path(path).exists():
                raise DataError(f"task {spec.name}: {option} {path} does not exist")


def run_task(
    lm: LoadedModel, spec: TaskSpec, suite: Suite, done: dict[str, TaskResult], batch_size: int
) -> TaskResult:
    if spec.type in PERTURBABLE:
        return PERTURBABLE[spec.type](lm, spec.options, batch_size)
    if spec.type == "canary_exposure":
        return run_canary_exposure(lm, spec.options, batch_size)
    if spec.type == "extraction":
        return run_extraction(lm, spec.options, batch_size)
    options = spec.options
    target = suite.task(options.of)
    clean = done.get(target.name) or run_task(lm, target, suite, done, batch_size)
    metrics: dict[str, float] = {}
    for kind in options.perturbations:
        noisy = PERTURBABLE[target.type](
            lm, target.options, batch_size, perturbation(kind, options.rate, options.seed)
        )
        metrics.update(ratios(clean.metrics, noisy.metrics, kind))
    details = {
        "data": clean.details.get("data", {}),
        "settings": {**to_dict(options), "of": target.name},
    }
    return TaskResult(metrics, details)


def evaluate_model(
    ref: str, suite: Suite, batch_size: int, unverified: bool = False
) -> dict[str, Any]:
    started = time.perf_counter()
    lm = load_for_eval(ref, unverified)
    load_seconds = time.perf_counter() - started
    done: dict[str, TaskResult] = {}
    details: dict[str, Any] = {}
    with progress_bar(f"eval {ref}", len(suite.tasks), "tasks") as bar:
        for spec in suite.tasks:
            started = time.perf_counter()
            try:
                result = run_task(lm, spec, suite, done, batch_size)
            except LmforgeError as exc:
                exc.args = (f"task {spec.name}: {exc.args[0]}", *exc.args[1:])
                raise
            seconds = time.perf_counter() - started
            done[spec.name] = result
            details[spec.name] = {"type": spec.type, "seconds": seconds, **result.details}
            log.info("%s: %s done in %.1f s", ref, spec.name, seconds)
            bar.advance(1)
    return {
        "model": {"ref": ref, "kind": lm.kind, "model_sha256": lm.sha256},
        "mlflow_run_id": lm.card.mlflow_run_id if lm.card else None,
        "load_seconds": load_seconds,
        "tasks": {name: result.metrics for name, result in done.items()},
        "details": details,
    }


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    suite = build_suite(cfg)
    preflight(suite)
    report = evaluate_model(cfg.model, suite, cfg.batch_size, cfg.unverified)
    report["suite"] = suite.source
    report["options"] = to_dict(cfg)
    if cfg.baseline:
        report["baseline"] = evaluate_model(cfg.baseline, suite, cfg.batch_size, cfg.unverified)
        report["comparison"] = compare(report, report["baseline"], suite, cfg.max_regression)
    with atomic_dir(Path(cfg.report), force=cfg.force) as tmp:
        report["plots"] = plots(report, tmp)
        report["drift_reference"] = drift_reference(cfg, suite, tmp)
        write_json_atomic(tmp / "report.json", report)
        (tmp / "report.md").write_text(markdown(report), encoding="utf-8")
    if cfg.track and report.get("mlflow_run_id"):
        log_to_run(report["mlflow_run_id"], report, Path(cfg.report))
    return report


def log_to_run(run_id: str, report: dict[str, Any], directory: Path) -> None:
    """Metrics `eval.<task>.<metric>` and the report dir as artifacts of the model's run. A
    store that is gone or unreachable costs a warning, not the evaluation."""
    from lmforge.registry.store import use_store_uri

    try:
        import mlflow

        use_store_uri()
        client = mlflow.MlflowClient()
        for task, metrics in report["tasks"].items():
            for metric, value in metrics.items():
                if math.isfinite(value):
                    client.log_metric(run_id, f"eval.{task}.{metric}", value)
        client.log_artifacts(run_id, str(directory), artifact_path=f"eval/{directory.name}")
    except Exception as exc:  # mlflow raises many types for a missing run or store
        log.warning("results not logged to MLflow run %s: %s", run_id, exc)
