"""`lmforge pipeline run PIPELINE.yaml`: the steps of a model's life from one YAML file, each an
lmforge command run as its own process. A step whose output exists (and that finished before)
is skipped; `--fresh` redoes everything. The quickstart is one such file.

A step's `capture` names fields of the JSON document its command prints with `--json`
(`{version: version}`, or a dotted path such as `gate.passed`); a step that exits with the
gate's refusal code is `refused`, any other non-zero exit `failed`. A step runs `python -m
lmforge` unless its `module` names another of lmforge's runnable modules (the task
pipelines' data step: `module: lmforge.pipeline.taskdata`)."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, ExitCode, LmforgeError
from lmforge.fsutil import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: str
    creates: str = ""
    capture: dict[str, str] = field(default_factory=dict)  # variable: field of its --json
    may_fail: bool = False
    serve: bool = False
    banner: str = ""  # printed (with the variables filled in) before the step runs
    module: str = "lmforge"  # what `python -m` runs: lmforge, or a module under it


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
    for step in steps:
        # Pipelines run lmforge's own code only, never an arbitrary module of the environment.
        if step.module != "lmforge" and not step.module.startswith("lmforge."):
            problems.append(f"step {step.name}: module {step.module!r} is not lmforge or under it")
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


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` items as variables."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: {item!r} is not NAME=VALUE")
        values[name] = value
    return values


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
    Captured values (fields of a step's JSON output) become variables of the later steps and
    are kept beside the markers, so a re-run that skips the step still has them."""
    # A variable may name others ("{pipeline_dir}/gates/x.yaml"): one pass fills them in.
    values = {
        name: _expand(value, pipeline.variables, f"vars.{name}")
        if isinstance(value, str)
        else value
        for name, value in pipeline.variables.items()
    }
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
            step.module,
            *shlex.split(_expand(step.run, values, step.name)),
        ]
        echo(f"{title}: {step.module} {shlex.join(command[3:])}")
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
        if not step.capture:  # a captured step's output is a JSON document, not for people
            sys.stdout.write(result.stdout)
        if result.returncode != 0:
            refused = result.returncode == ExitCode.GATE_REFUSED
            status = "refused" if refused else "failed"
            pipeline.outcomes.append(
                Outcome(step.name, status, seconds, f"exit {result.returncode}")
            )
            echo(f"{title}: {status} after {seconds:.1f} s (exit {result.returncode})")
            if step.may_fail:
                continue
            raise LmforgeError(f"pipeline step {step.name} failed (exit {result.returncode})")
        captured = capture(step, result.stdout)
        for variable, value in captured.items():
            echo(f"{title}: {variable} = {value}")
        values.update(captured)
        # Atomic: a kill mid-write must not leave a marker that reads as "done" but is not JSON.
        write_json_atomic(marker, captured)
        pipeline.outcomes.append(Outcome(step.name, "done", seconds))
        echo(f"{title}: done in {seconds:.1f} s")
    echo(summary(pipeline, values))
    return pipeline


def capture(step: Step, output: str) -> dict[str, str]:
    """The step's `capture` fields, read from the one JSON document it printed."""
    if not step.capture:
        return {}
    try:
        document = json.loads(output)
    except json.JSONDecodeError:
        raise LmforgeError(
            f"step {step.name}: its output is not one JSON document",
            hint="a step that captures values must run its command with --json",
        ) from None
    captured = {}
    for variable, path in step.capture.items():
        value: Any = document
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                raise LmforgeError(f"step {step.name}: no {path!r} in its output for {variable}")
            value = value[key]
        captured[variable] = value if isinstance(value, str) else json.dumps(value)
    return captured


def summary(pipeline: Pipeline, values: dict[str, Any]) -> str:
    lines = ["", f"pipeline {pipeline.name}:"]
    for outcome in pipeline.outcomes:
        took = f"{outcome.seconds:7.1f} s" if outcome.seconds else " " * 9
        lines.append(f"  {outcome.step:<20} {outcome.status:<9} {took}  {outcome.detail}")
    lines.append(
        f"  total {sum(o.seconds for o in pipeline.outcomes):.1f} s; outputs in {values['home']}"
    )
    return "\n".join(lines)
