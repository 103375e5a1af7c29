"""`lmforge tune`: hyperparameter search with Optuna over `train` options.

The space is YAML, one train option per key:

    learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}
    n_layer: {low: 2, high: 6, step: 2}
    dropout: [0.0, 0.1, 0.2]

Each trial is a `train` run (an MLflow child run of the study's run) whose intermediate
validation losses feed the pruner. The study lives in an SQLite file (or any Optuna storage
URL) so an interrupted study resumes and several processes can share it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

from lmforge.config import build_config, read_yaml, to_dict
from lmforge.config.train import TrainConfig, TuneConfig
from lmforge.errors import ConfigError, LmforgeError, MissingDependencyError

log = logging.getLogger(__name__)
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_NOT_SEARCHABLE = {"data", "output", "force", "resume", "track", "experiment", "run_name"}


def load_space(path: Path) -> dict[str, Any]:
    """Read and check a search space; every problem is reported at once."""
    space = read_yaml(path)
    problems = []
    for name, spec in space.items():
        if name not in _TRAIN_FIELDS or name in _NOT_SEARCHABLE:
            problems.append(f"{name}: not a searchable train option")
        elif isinstance(spec, list):
            if not spec:
                problems.append(f"{name}: an empty list of choices")
        elif isinstance(spec, dict):
            if not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log", "step"}:
                problems.append(f"{name}: a range needs low and high (and optional log, step)")
            elif not all(isinstance(spec[k], int | float) for k in ("low", "high")):
                problems.append(f"{name}: low and high must be numbers, got {spec}")
            elif spec["low"] > spec["high"]:
                problems.append(f"{name}: low {spec['low']} is above high {spec['high']}")
        else:
            problems.append(f"{name}: expected a list of choices or {{low, high}}, got {spec!r}")
    if not space:
        problems.append("the space is empty")
    if problems:
        raise ConfigError(f"search space {path}: " + "; ".join(problems))
    return space


def grid_of(space: dict[str, Any]) -> dict[str, list[Any]]:
    """Grid search needs finite values: lists as they are, ranges only with a step."""
    grid = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            grid[name] = spec
        elif "step" in spec:
            count = round((spec["high"] - spec["low"]) / spec["step"]) + 1
            grid[name] = [spec["low"] + i * spec["step"] for i in range(count)]
        else:
            raise ConfigError(f"{name}: grid search needs a list of values or a range with a step")
    return grid


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            params[name] = trial.suggest_categorical(name, spec)
        elif _TRAIN_FIELDS[name].type in ("int", int) and isinstance(spec["low"], int):
            params[name] = trial.suggest_int(
                name,
                spec["low"],
                spec["high"],
                step=spec.get("step", 1),
                log=spec.get("log", False),
            )
        else:
            params[name] = trial.suggest_float(
                name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False)
            )
    return params


class PruneOnValidLoss(TrainerCallback):
    """Reports each validation loss to Optuna and stops a trial the pruner gives up on."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        import optuna

        value = (metrics or {}).get("eval_valid_loss")
        if value is None:
            return
        self.trial.report(value, state.global_step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {state.global_step} (valid loss {value:.4f})")


def _sampler(cfg: TuneConfig, space: dict[str, Any]) -> Any:
    import optuna

    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=cfg.seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    if cfg.sampler == "gp":
        return optuna.samplers.GPSampler(seed=cfg.seed)
    return optuna.samplers.TPESampler(seed=cfg.seed)


def _base_train_values(cfg: TuneConfig) -> dict[str, Any]:
    values = {k: v for k, v in to_dict(cfg).items() if k in _TRAIN_FIELDS}
    values.update(force=True, resume=False)
    return values


def tune(cfg: TuneConfig, console: Console) -> Any:
    try:
        import optuna
        from optuna.storages import RDBStorage, RetryFailedTrialCallback
    except ImportError:
        raise MissingDependencyError("lmforge tune", "optuna", "tune") from None

    from lmforge.train.train import train

    space = load_space(Path(cfg.space))
    grid = grid_of(space) if cfg.sampler == "grid" else None
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    storage_url = cfg.storage or f"sqlite:///{(output / 'study.db').resolve()}"
    # A process killed mid-trial leaves it RUNNING; heartbeats let the next run fail it and retry.
    storage = RDBStorage(
        storage_url,
        heartbeat_interval=30,
        grace_period=90,
        failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if cfg.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=cfg.study_name or output.name,
        storage=storage,
        sampler=_sampler(cfg, space),
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
    wanted = min(cfg.trials, math.prod(len(v) for v in grid.values())) if grid else cfg.trials
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    remaining = wanted - sum(t.state in finished for t in study.trials)
    base = _base_train_values(cfg)
    parent_run_id = _study_run(cfg, study.study_name, space) if cfg.track else None

    def objective(trial: Any) -> float:
        params = suggest(trial, space)
        trial_dir = output / "trials" / f"trial-{trial.number}"
        values = {**base, **params, "output": str(trial_dir), "run_name": f"trial-{trial.number}"}
        train_cfg = build_config(TrainConfig, values, f"trial {trial.number}")
        try:
            result = train(
                train_cfg, callbacks=[PruneOnValidLoss(trial)], parent_run_id=parent_run_id
            )
        except optuna.TrialPruned:
            shutil.rmtree(trial_dir.with_name(trial_dir.name + ".checkpoints"), ignore_errors=True)
            raise
        trial.set_user_attr("metrics", result.metrics)
        return result.metrics["valid_loss"]

    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=cfg.timeout * 60 if cfg.timeout else None,
            catch=(),
        )
    return report(study, cfg, space, output, console)


def _study_run(cfg: TuneConfig, name: str, space: dict[str, Any]) -> str:
    import mlflow

    from lmforge.registry.query import by_tag
    from lmforge.registry.store import use_store

    experiment_id = use_store(cfg.experiment)
    runs = mlflow.search_runs(
        [experiment_id], filter_string=by_tag("lmforge_study", name), output_format="list"
    )
    if runs:
        return str(runs[0].info.run_id)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"study {name}", tags={"lmforge_study": name}
    ) as run:
        mlflow.log_params(
            {"sampler": cfg.sampler, "trials": cfg.trials, "space": yaml.safe_dump(space)}
        )
        return str(run.info.run_id)


def report(
    study: Any, cfg: TuneConfig, space: dict[str, Any], output: Path, console: Console
) -> Any:
    import optuna

    table = Table(title=f"study {study.study_name}", title_justify="left")
    for header in ("trial", "state", *space, "valid loss"):
        table.add_column(header, justify="right")
    for trial in study.trials:
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        table.add_row(
            str(trial.number),
            trial.state.name.lower(),
            *(str(trial.params.get(name, "-")) for name in space),
            value,
        )
    console.print(table)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise LmforgeError(
            "no trial completed", hint="see the trial errors above, or raise --trials"
        )
    best = study.best_trial
    best_config = {**_base_train_values(cfg), **best.params}
    for key in ("force", "resume", "output", "run_name"):
        best_config.pop(key, None)
    best_path = output / "best-train.yaml"
    best_path.write_text(
        f"# Best of study {study.study_name}: trial {best.number}, valid loss {best.value:.4f}.\n"
        f"# lmforge train --config {best_path} --output MODEL_DIR\n"
        + yaml.safe_dump(best_config, sort_keys=True)
    )
    plots = _plots(study, output)
    console.print(f"best: trial {best.number}, valid loss {best.value:.4f}, params {best.params}")
    console.print(
        f"best train config: [bold]{best_path}[/bold]; plots: {', '.join(map(str, plots))}"
    )
    return study


def _plots(study: Any, output: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    logging.getLogger("optuna").setLevel(logging.ERROR)
    made = []
    # Optuna's plot functions differ in their signatures; each takes the study first.
    charts: list[tuple[str, Callable[[Any], Any]]] = [
        ("optimization_history.png", vis.plot_optimization_history)
    ]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) >= 2 and len({str(t.params) for t in complete}) >= 2:
        charts.append(("param_importances.png", vis.plot_param_importances))
    for name, plot in charts:
        axes = plot(study)
        axes.figure.set_size_inches(8, 4.5)
        axes.figure.tight_layout()
        axes.figure.savefig(output / name, dpi=110)
        plt.close(axes.figure)
        made.append(output / name)
    return made
