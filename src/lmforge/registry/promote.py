"""`registry promote`: move an alias to a candidate version through the promotion gate
(lmforge.gate), comparing the candidate's recorded metrics (its card's and those `lmforge
eval` recorded on it, lmforge.registry.evals) with the current holder's and with the gate's
floors. A failure is refused unless forced with a reason; who and why go into the version's
tags. A metric the gate requires and the candidate lacks is refused with the `lmforge eval`
command that measures it."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge import gate
from lmforge.config.registry import PromoteConfig
from lmforge.errors import GateRefused, RegistryError
from lmforge.registry.aliases import move_alias
from lmforge.registry.evals import eval_command
from lmforge.registry.refs import ModelRef
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import TAG, get_version, version_metrics

DEFAULT_GATE = Path(__file__).with_name("gate.yaml")


@dataclass(frozen=True)
class Promotion:
    """What `promote` decided: `moved` is False only when the gate refused (not forced)."""

    name: str
    alias: str
    version: str
    previous: str | None
    moved: bool
    forced: bool
    comparison: gate.Comparison
    # metric: the `lmforge eval` command that measures it, for each required one missing
    commands: dict[str, str] = field(default_factory=dict)

    @property
    def refusal(self) -> GateRefused | None:
        if self.moved:
            return None
        return gate.comparison_refusal(
            self.comparison,
            f"v{self.version}",
            f"@{self.alias} (v{self.previous})",
            hint='pass --force --reason "..." to override; it is recorded',
            measure=lambda check: self.commands.get(check.metric, ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "previous": self.previous,
            "moved": self.moved,
            "forced": self.forced,
            "gate": self.comparison.to_json(),
            "missing": self.commands,
        }


def load_registry_gate(path: str) -> gate.Gate:
    """The gate of `path`, or the built-in `registry/gate.yaml` when it is empty."""
    return gate.load_gate(Path(path) if path else DEFAULT_GATE)


def promote(config: PromoteConfig) -> Promotion:
    from mlflow.exceptions import MlflowException

    client = store_client()
    name, alias = config.name, config.alias
    candidate = get_version(client, ModelRef(name, version=config.version))
    number = str(candidate.version)
    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        holder = None
    previous = str(holder.version) if holder is not None else None
    if previous == number:
        raise RegistryError(f"{name}/{config.version} already holds @{alias}")
    comparison = gate.compare(
        load_registry_gate(config.gate),
        version_metrics(holder) if holder else {},
        version_metrics(candidate),
    )
    commands = {
        c.metric: eval_command(name, number, c.metric, c.suite, holder)
        for c in comparison.failures
        if c.verdict == "missing"
    }
    if not comparison.passed and not config.force:
        return Promotion(name, alias, number, previous, False, False, comparison, commands)
    entry: dict[str, Any] = {"from": previous}
    forced = not comparison.passed
    if forced:
        entry.update(forced=True, reason=config.reason)
        client.set_model_version_tag(name, number, f"{TAG}forced_by", getpass.getuser())
        client.set_model_version_tag(name, number, f"{TAG}force_reason", config.reason)
    move_alias(client, name, alias, number, entry)
    return Promotion(name, alias, number, previous, True, forced, comparison, commands)
