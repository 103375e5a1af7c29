"""`lmforge pipeline run PIPELINE.yaml`: the steps of a model's life from one YAML file, each an
lmforge command run as its own process. A step whose output exists (and that finished before)
is skipped; `--fresh` redoes everything. The quickstart is one such file."""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, LmforgeError

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: str
    creates: str = ""
    capture: dict[str, str] = field(default_factory=dict)
    may_fail: bool = False
    serve: bool = False
    banner: str = ""  # printed (with the variables filled in) before the step runs


@dataclass
class Outcome:
    step: str
    status: str  # done, skipped, refused, failed
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Pipeline:
    name: str
    variables: dict[str, Any]
    steps: list[Step]
    outcomes: list[Outcome] = field(default_factory=list)


def load_pipeline(path: Path | str, overrides: dict[str, Any] | None = None) -> Pipeline:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    problems = []
    unknown = set(spec) - {"name", "vars", "steps"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (use name, vars, steps)")
    steps = []
    for i, raw in enumerate(spec.get("steps") or []):
        try:
            steps.append(Step(**raw))
        except TypeError as exc:
            problems.append(f"steps[{i}]: {exc}")
    if not steps:
        problems.append("steps: give at least one step")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        problems.append(f"steps: names must be unique, got {names}")
    # {pipeline_dir}: files that travel with the pipeline (an eval suite, say) resolve
    # wherever it is run from.
    variables = {
        "pipeline_dir": str(path.resolve().parent),
        **(spec.get("vars") or {}),
        **(overrides or {}),
    }
    if unknown_overrides := set(overrides or {}) - set(spec.get("vars") or {}):
        problems.append(f"--set: {sorted(unknown_overrides)} are not variables of this pipeline")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return Pipeline(spec.get("name", path.stem), variables, steps)


def builtin_pipeline(name: str) -> Path:
    path = resources.files("lmforge.pipeline").joinpath(f"{name}.yaml")
    return Path(str(path))


def _expand(text: str, values: dict[str, Any], step: str) -> str:
    try:
        return text.format(**values)
    except KeyError as exc:
        raise ConfigError(f"step {step}: unknown variable {exc} in {text!r}") from None


def _marker(home: Path, step: Step) -> Path:
    return home / ".steps" / f"{step.name}.done"


def run_pipeline(
    pipeline: Pipeline, *, fresh: bool = False, serve: bool = True, echo: Any = print
) -> Pipeline:
    """Run the steps in order; stop at the first failure (a `may_fail` step only records it).
    Captured values (regexes over a step's output) become variables of the later steps and
    are kept beside the markers, so a re-run that skips the step still has them."""
    import json

    values = dict(pipeline.variables)
    home = Path(_expand(str(values.get("home", ".lmforge/pipelines/" + pipeline.name)), values, ""))
    values["home"] = str(home)
    if fresh and home.exists():
        shutil.rmtree(home)
    (home / ".steps").mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(pipeline.steps, 1):
        marker = _marker(home, step)
        title = f"[{number}/{len(pipeline.steps)}] {step.name}"
        if step.serve and not serve:
            pipeline.outcomes.append(Outcome(step.name, "skipped", detail="--no-serve"))
            echo(f"{title}: skipped (--no-serve)")
            continue
        creates = Path(_expand(step.creates, values, step.name)) if step.creates else None
        if marker.exists() and (creates is None or creates.exists()) and not step.serve:
            values.update(json.loads(marker.read_text(encoding="utf-8")))
            pipeline.outcomes.append(Outcome(step.name, "skipped", detail="already done"))
            echo(f"{title}: skipped (already done; --fresh to redo)")
            continue
        command = [
            sys.executable,
            "-m",
            "lmforge",
            *shlex.split(_expand(step.run, values, step.name)),
        ]
        echo(f"{title}: lmforge {shlex.join(command[3:])}")
        started = time.monotonic()
        if step.serve:
            pipeline.outcomes.append(Outcome(step.name, "serving"))
            echo(summary(pipeline, values))
            if step.banner:
                echo(_expand(step.banner, values, step.name))
            subprocess.run(command, check=False)
            return pipeline
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        seconds = time.monotonic() - started
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            status = "refused" if step.may_fail else "failed"
            pipeline.outcomes.append(
                Outcome(step.name, status, seconds, f"exit {result.returncode}")
            )
            echo(f"{title}: {status} after {seconds:.1f} s (exit {result.returncode})")
            if step.may_fail:
                continue
            raise LmforgeError(f"pipeline step {step.name} failed (exit {result.returncode})")
        captured = {}
        for variable, pattern in step.capture.items():
            match = re.search(pattern, result.stdout)
            if match is None:
                raise LmforgeError(f"step {step.name}: no {pattern!r} in its output for {variable}")
            captured[variable] = match.group(1)
        values.update(captured)
        marker.write_text(json.dumps(captured), encoding="utf-8")
        pipeline.outcomes.append(Outcome(step.name, "done", seconds))
        echo(f"{title}: done in {seconds:.1f} s")
    echo(summary(pipeline, values))
    return pipeline


def summary(pipeline: Pipeline, values: dict[str, Any]) -> str:
    lines = ["", f"pipeline {pipeline.name}:"]
    for outcome in pipeline.outcomes:
        took = f"{outcome.seconds:7.1f} s" if outcome.seconds else " " * 9
        lines.append(f"  {outcome.step:<20} {outcome.status:<9} {took}  {outcome.detail}")
    lines.append(
        f"  total {sum(o.seconds for o in pipeline.outcomes):.1f} s; outputs in {values['home']}"
    )
    return "\n".join(lines)
