"""An evaluation suite: the YAML file that lists a model's tasks with their data, and the gate
that a candidate must pass against a baseline.

    tasks:
      - name: sst2                     # the key under report.json's tasks (default: the type)
        type: classification           # perplexity | summarization | classification | matching
                                       # | robustness | canary_exposure | extraction
        data: ../shared/data/sst2/dev_from_train.tsv
        fields: {text: sentence}
        labels: {"0": negative, "1": positive}
        template: "Review: {text}\\nSentiment:"
    gate:                              # optional: task.metric patterns, first match wins
      sst2.accuracy: {max_regression: 0.01}
      "*perplexity": {max_regression: 0.05}   # better: higher|lower when not obvious
                                       # (the rules of lmforge.gate)

Relative paths in a suite are relative to the suite file, as in docker-compose and kustomize."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import build_config, read_yaml
from lmforge.config.evaluate import TASK_TYPES
from lmforge.errors import ConfigError
from lmforge.gate import Rule, parse_rules


@dataclass
class TaskSpec:
    name: str
    type: str
    options: Any


@dataclass
class Suite:
    tasks: list[TaskSpec]
    gate: dict[str, Rule] = field(default_factory=dict)  # lmforge.gate rules by pattern
    source: str = "(command line)"

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)


def load_suite(path: Path) -> Suite:
    raw = read_yaml(path)
    unknown = sorted(set(raw) - {"tasks", "gate"})
    if unknown:
        raise ConfigError(f"suite {path}: unknown key(s) {', '.join(unknown)} (keys: tasks, gate)")
    entries = raw.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"suite {path}: `tasks` must be a non-empty list")
    suite = Suite(
        [parse_task(entry, f"suite {path}: tasks[{i}]") for i, entry in enumerate(entries)]
    )
    for spec in suite.tasks:
        _relative_to(spec.options, path.parent)
    suite.gate = parse_rules(raw.get("gate") or {}, f"suite {path}: gate")
    suite.source = str(path)
    check_names(suite, str(path))
    return suite


def parse_task(entry: Any, where: str) -> TaskSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a task must be a mapping with a `type`, got {entry!r}")
    values = dict(entry)
    kind = values.pop("type", None)
    if kind not in TASK_TYPES:
        raise ConfigError(
            f"{where}: unknown task type {kind!r}", hint=f"types: {', '.join(TASK_TYPES)}"
        )
    name = str(values.pop("name", kind))
    options: Any = build_config(TASK_TYPES[kind], values, origin=f"{where} ({name})")
    return TaskSpec(name, kind, options)


# Task options that name files or dirs.
PATH_OPTIONS = ("data", "threshold_data", "dataset")


def _relative_to(options: Any, base: Path) -> None:
    for name in PATH_OPTIONS:
        value = getattr(options, name, "")
        if value and not Path(value).is_absolute():
            setattr(options, name, os.path.normpath(base / value))


def check_names(suite: Suite, where: str) -> None:
    names = [t.name for t in suite.tasks]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"suite {where}: task names repeat: {', '.join(duplicated)}")
    kinds = {t.name: t.type for t in suite.tasks}
    for spec in suite.tasks:
        if spec.type != "robustness":
            continue
        target = spec.options.of
        if kinds.get(target) in (None, "robustness", "canary_exposure", "extraction"):
            raise ConfigError(
                f"suite {where}: task {spec.name} perturbs {target!r}, which is not a "
                "perplexity, summarization, classification or matching task of this suite"
            )
