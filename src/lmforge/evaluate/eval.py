"""`lmforge eval MODEL --suite SUITE.yaml --report DIR [--baseline MODEL]`: run a suite's tasks
on a model (and on a baseline), write report.json (every number under tasks.<task>.<metric>,
next to the data's sha256, the model's sha256 and the settings), report.md and the plots. A
registry version (`models:/NAME/N`, `models:/NAME@ALIAS` pinned to the version it resolved to)
gets the numbers recorded on it, where `registry promote`'s gate reads them, and on its run
(lmforge.registry.evals); a model dir's numbers go to its training run when it has one. With
a baseline the report holds the comparison, and the exit code says whether the candidate
passed the suite's gate."""

from __future__ import annotations

import logging
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
from lmforge.threads import apply_threads

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
    from lmforge.registry.resolve import resolve

    started = time.perf_counter()
    # Resolved once, so a moving alias cannot make the numbers land on another version.
    resolved = resolve(ref, hub=True)
    lm = load_for_eval(ref if resolved.hub else resolved.location, unverified)
    lm.ref = ref
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
    version = None
    run_id = lm.card.mlflow_run_id if lm.card else None
    if resolved.version is not None:
        from lmforge.registry.evals import version_run_id

        version = {"name": resolved.name, "version": resolved.version}
        run_id = version_run_id(resolved.name, resolved.version)
    return {
        "model": {"ref": ref, "kind": lm.kind, "model_sha256": lm.sha256, "registry": version},
        "mlflow_run_id": run_id,
        "load_seconds": load_seconds,
        "tasks": {name: result.metrics for name, result in done.items()},
        "details": details,
    }


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    started = time.perf_counter()
    suite = build_suite(cfg)
    preflight(suite)
    threads = apply_threads(cfg.threads)
    report = evaluate_model(cfg.model, suite, cfg.batch_size, cfg.unverified)
    report["suite"] = suite.source
    report["options"] = to_dict(cfg)
    report["threads"] = threads
    if cfg.baseline:
        report["baseline"] = evaluate_model(cfg.baseline, suite, cfg.batch_size, cfg.unverified)
        report["comparison"] = compare(report, report["baseline"], suite, cfg.max_regression)
    report["seconds"] = time.perf_counter() - started
    with atomic_dir(Path(cfg.report), force=cfg.force) as tmp:
        report["plots"] = plots(report, tmp)
        report["drift_reference"] = drift_reference(cfg, suite, tmp)
        write_json_atomic(tmp / "report.json", report)
        (tmp / "report.md").write_text(markdown(report), encoding="utf-8")
    if cfg.track:
        record(report, cfg)
        if "baseline" in report:
            record(report["baseline"], cfg)
    return report


def rerun_args(cfg: EvalConfig) -> list[str]:
    """The arguments that measure the same tasks again (stored with a version's record, so a
    gate can name the command that fills in a missing metric)."""
    args = ["--suite", str(Path(cfg.suite).resolve())] if cfg.suite else []
    for path in cfg.perplexity:
        args += ["--perplexity", str(Path(path).resolve())]
    if cfg.perplexity and cfg.context_length:
        args += ["--context-length", str(cfg.context_length)]
    if cfg.perplexity and cfg.stride:
        args += ["--stride", str(cfg.stride)]
    return args


def record(report: dict[str, Any], cfg: EvalConfig) -> None:
    """On the registry version the model is (tags and its run), else on its training run."""
    from lmforge.registry.evals import log_to_run, record_eval

    version = report["model"].get("registry")
    if version:
        try:
            record_eval(
                version["name"], version["version"], report, Path(cfg.report), rerun_args(cfg)
            )
        except Exception as exc:  # mlflow raises many types for a missing store or version
            log.warning("results not recorded on %s: %s", report["model"]["ref"], exc)
    elif report.get("mlflow_run_id"):
        log_to_run(report["mlflow_run_id"], report, Path(cfg.report))
