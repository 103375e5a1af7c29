"""The promotion gate and alias moves. `promote` compares the candidate's recorded metrics
with the current alias holder's under the gate's thresholds and refuses a regression unless
forced with a reason (who and why go into the version's tags). Every move is appended to the
registered model's history tag for that alias, which `rollback` walks back."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.config import read_yaml
from lmforge.errors import ConfigError, RegistryError
from lmforge.registry.refs import ModelRef
from lmforge.registry.versions import TAG, get_version, version_metrics

DEFAULT_GATE = Path(__file__).with_name("gate.yaml")
HISTORY_KEEP = 40


@dataclass
class GateRow:
    metric: str
    holder: float | None
    candidate: float | None
    change: float | None  # relative; positive = worse
    allowed: float
    verdict: str  # "ok", "regressed", "not compared"


def load_gate(path: str) -> dict[str, dict[str, Any]]:
    """Metric rules from a gate YAML (the built-in `registry/gate.yaml` by default)."""
    rules = read_yaml(Path(path) if path else DEFAULT_GATE).get("metrics")
    problems = []
    if not isinstance(rules, dict) or not rules:
        raise ConfigError(f"gate {path}: expected a 'metrics' mapping of metric: rule")
    for name, rule in rules.items():
        if not isinstance(rule, dict) or rule.get("better") not in ("lower", "higher"):
            problems.append(f"{name}: 'better' must be lower or higher")
        elif not isinstance(rule.get("max_regression", 0), int | float):
            problems.append(f"{name}: max_regression must be a number")
    if problems:
        raise ConfigError(f"gate {path}: " + "; ".join(problems))
    return rules


def evaluate_gate(
    gate: dict[str, dict[str, Any]], holder: dict[str, float], candidate: dict[str, float]
) -> list[GateRow]:
    rows = []
    for metric, rule in gate.items():
        allowed = float(rule.get("max_regression", 0.0))
        old, new = holder.get(metric), candidate.get(metric)
        if old is None or new is None or old == 0:
            if old is not None or new is not None:
                rows.append(GateRow(metric, old, new, None, allowed, "not compared"))
            continue
        worse = (new - old) / abs(old) if rule["better"] == "lower" else (old - new) / abs(old)
        rows.append(
            GateRow(metric, old, new, worse, allowed, "regressed" if worse > allowed else "ok")
        )
    return rows


def _history_key(alias: str) -> str:
    return f"{TAG}alias_history.{alias}"


def alias_history(client: Any, name: str, alias: str) -> list[dict[str, Any]]:
    model = client.get_registered_model(name)
    return json.loads(model.tags.get(_history_key(alias), "[]"))


def _move(client: Any, name: str, alias: str, version: str, entry: dict[str, Any]) -> None:
    history = alias_history(client, name, alias)
    history.append(
        {
            "version": version,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": getpass.getuser(),
            **entry,
        }
    )
    # The alias itself moves in one store operation; the history follows it.
    client.set_registered_model_alias(name, alias, version)
    client.set_registered_model_tag(name, _history_key(alias), json.dumps(history[-HISTORY_KEEP:]))


@dataclass
class PromoteResult:
    moved: bool
    rows: list[GateRow]
    previous: str | None
    version: str


def promote(
    client: Any, name: str, version: str, alias: str, gate_path: str, force: bool, reason: str
) -> PromoteResult:
    candidate = get_version(client, ModelRef(name, version=version))
    number = str(candidate.version)
    from mlflow.exceptions import MlflowException

    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        holder = None
    previous = str(holder.version) if holder is not None else None
    if previous == number:
        raise RegistryError(f"{name}/{version} already holds @{alias}")
    rows = evaluate_gate(
        load_gate(gate_path), version_metrics(holder) if holder else {}, version_metrics(candidate)
    )
    refused = [r for r in rows if r.verdict == "regressed"]
    if refused and not force:
        return PromoteResult(False, rows, previous, number)
    entry: dict[str, Any] = {"from": previous}
    if refused:
        entry.update(forced=True, reason=reason)
        client.set_model_version_tag(name, number, f"{TAG}forced_by", getpass.getuser())
        client.set_model_version_tag(name, number, f"{TAG}force_reason", reason)
    _move(client, name, alias, number, entry)
    return PromoteResult(True, rows, previous, number)


def rollback(client: Any, name: str, alias: str) -> tuple[str, str]:
    """Move `alias` back to the holder before the current one; returns (from, to)."""
    history = alias_history(client, name, alias)
    if not history:
        raise RegistryError(f"{name}@{alias} has no history to roll back")
    current = history[-1]
    previous = current.get("from")
    if not previous:
        raise RegistryError(
            f"{name}@{alias} has no previous holder (version {current['version']} was the first)"
        )
    get_version(client, ModelRef(name, version=previous))
    _move(client, name, alias, previous, {"from": current["version"], "rollback": True})
    return current["version"], previous


def delete_version(client: Any, name: str, version: str) -> None:
    found = get_version(client, ModelRef(name, version=version))
    if found.aliases:
        raise RegistryError(
            f"{name}/{version} holds @{', @'.join(found.aliases)}",
            hint="promote another version (or roll back) first",
        )
    client.delete_model_version(name, version)
