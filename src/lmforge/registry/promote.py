"""`registry promote`: move an alias to a candidate version through the promotion gate
(lmforge.gate), comparing the candidate's recorded metrics with the current holder's. A
regression is refused unless forced with a reason; who and why go into the version's tags."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge import gate
from lmforge.config.registry import PromoteConfig
from lmforge.errors import GateRefused, RegistryError
from lmforge.registry.aliases import move_alias
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

    @property
    def refusal(self) -> GateRefused | None:
        if self.moved:
            return None
        return gate.refusal(
            self.comparison.regressed,
            f"v{self.version}",
            f"@{self.alias} (v{self.previous})",
            hint='pass --force --reason "..." to override; it is recorded',
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
    if not comparison.passed and not config.force:
        return Promotion(name, alias, number, previous, False, False, comparison)
    entry: dict[str, Any] = {"from": previous}
    forced = not comparison.passed
    if forced:
        entry.update(forced=True, reason=config.reason)
        client.set_model_version_tag(name, number, f"{TAG}forced_by", getpass.getuser())
        client.set_model_version_tag(name, number, f"{TAG}force_reason", config.reason)
    move_alias(client, name, alias, number, entry)
    return Promotion(name, alias, number, previous, True, forced, comparison)
