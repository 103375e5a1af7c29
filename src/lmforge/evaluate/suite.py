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

Relative paths in a suite are relative to the suite file, as in docker-compose and kustomize."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import build_config, read_yaml
from lmforge.config.evaluate import TASK_TYPES
from lmforge.errors import ConfigError


@dataclass
class TaskSpec:
    name: str
    type: str
    options: Any


@dataclass
class GateRule:
    better: str | None  # None: the metric's natural direction
    max_regression: float


@dataclass
class Suite:
    tasks: list[TaskSpec]
    gate: dict[str, GateRule] = field(default_factory=dict)
    source: str = "(command line)"

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def rule(self, key: str, default_regression: float) -> GateRule | None:
        """The gate rule of `task.metric`: the first matching pattern of the suite's gate, else
        the default regression. None: not gated (counts, sizes, speeds and chosen thresholds
        have no better direction, so they are gated only when the gate says which is better)."""
        natural = direction(key.rsplit(".", 1)[-1])
        for pattern, rule in self.gate.items():
            if fnmatch.fnmatchcase(key, pattern):
                better = rule.better or natural
                return GateRule(better, rule.max_regression) if better else None
        return GateRule(natural, default_regression) if natural else None


# Substrings of metric names, checked in order: which way is better. Counts, sizes, speeds and
# chosen thresholds are information, not quality, and are never gated.
_LOWER = ("perplexity", "loss", "bits_per_byte", "exposure", "extraction", "matched_tokens")
_HIGHER = ("rouge", "bleu", "accuracy", "f1", "spearman", "pearson")


def direction(metric: str) -> str | None:
    if any(word in metric for word in _LOWER):
        return "lower"
    if any(word in metric for word in _HIGHER):
        return "higher"
    return None


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
    suite.gate = parse_gate(raw.get("gate") or {}, f"suite {path}: gate")
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


def parse_gate(raw: Any, where: str) -> dict[str, GateRule]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must map task.metric patterns to rules")
    rules = {}
    for pattern, rule in raw.items():
        if not isinstance(rule, dict) or not {"max_regression"} <= set(rule) <= {
            "better",
            "max_regression",
        }:
            raise ConfigError(
                f"{where}.{pattern}: expected {{max_regression: X}} or "
                f"{{better: higher|lower, max_regression: X}}, got {rule!r}"
            )
        better = rule.get("better")
        if better not in (None, "higher", "lower"):
            raise ConfigError(f"{where}.{pattern}: better must be higher or lower, not {better!r}")
        rules[str(pattern)] = GateRule(better, float(rule["max_regression"]))
    return rules


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
