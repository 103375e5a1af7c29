"""Options of the `registry` verbs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.config import option

# Registered model names: they go into MLflow filter strings and cache paths unquoted.
_NAME = re.compile(r"(?!\.+$)[A-Za-z0-9._-]+")
NAME_RULE = "a name is letters, digits, '.', '_' and '-' (not only dots)"


def bad_name(name: str) -> bool:
    return _NAME.fullmatch(name) is None


def _required(**values: str) -> list[str]:
    return [f"{name}: {name.upper()} is required" for name, value in values.items() if not value]


def _named(name: str) -> list[str]:
    return (
        [f"name: bad registered model name {name!r} ({NAME_RULE})"]
        if name and bad_name(name)
        else []
    )


@dataclass
class RegisterConfig:
    """Options of `lmforge registry register`."""

    model_dir: str = option("", "The model dir to register (verified against its lmforge.json).")
    name: str = option("", "Registered model name (created on first use).")

    def problems(self) -> list[str]:
        return _required(model_dir=self.model_dir, name=self.name) + _named(self.name)


@dataclass
class ListConfig:
    """Options of `lmforge registry list`."""

    name: str = option("", "Only this model's versions (default: every model).")

    def problems(self) -> list[str]:
        return _named(self.name)


@dataclass
class ShowConfig:
    """Options of `lmforge registry show`."""

    ref: str = option("", "NAME, NAME/VERSION or NAME@ALIAS (models:/ prefix optional).")

    def problems(self) -> list[str]:
        return _required(ref=self.ref)


@dataclass
class DiffConfig:
    """Options of `lmforge registry diff`."""

    name: str = option("", "Registered model name.")
    left: str = option("", "First version.")
    right: str = option("", "Second version.")

    def problems(self) -> list[str]:
        return _required(name=self.name, left=self.left, right=self.right) + _named(self.name)


@dataclass
class PromoteConfig:
    """Options of `lmforge registry promote`."""

    name: str = option("", "Registered model name.")
    version: str = option("", "The candidate version.")
    alias: str = option("production", "The alias to move.")
    gate: str = option(
        "", "Gate YAML of metric thresholds (default: the built-in registry/gate.yaml)."
    )
    force: bool = option(False, "Move the alias even if the gate refuses (needs --reason).")
    reason: str = option("", "Why the gate is overridden; recorded with who did it.")

    def problems(self) -> list[str]:
        out = _required(name=self.name, version=self.version) + _named(self.name)
        if self.force and not self.reason.strip():
            out.append('reason: --force needs --reason "..." (it is recorded in the version tags)')
        return out


@dataclass
class RollbackConfig:
    """Options of `lmforge registry rollback`."""

    name: str = option("", "Registered model name.")
    alias: str = option("production", "The alias to move back to its previous holder.")

    def problems(self) -> list[str]:
        return _required(name=self.name) + _named(self.name)


@dataclass
class PullConfig:
    """Options of `lmforge registry pull`."""

    ref: str = option("", "NAME@ALIAS or NAME/VERSION (models:/ prefix optional).")

    def problems(self) -> list[str]:
        return _required(ref=self.ref)


@dataclass
class DeleteConfig:
    """Options of `lmforge registry delete`."""

    name: str = option("", "Registered model name.")
    version: str = option("", "The version to delete (refused while it holds an alias).")

    def problems(self) -> list[str]:
        return _required(name=self.name, version=self.version) + _named(self.name)
