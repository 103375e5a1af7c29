"""Registry references: `models:/NAME@ALIAS`, `models:/NAME/VERSION` (MLflow URIs), and the
same without the prefix; a bare NAME means its newest version."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.config.registry import NAME_RULE, bad_name
from lmforge.errors import RegistryError

PREFIX = "models:/"
_REF = re.compile(r"(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))?")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version:
            return f"{PREFIX}{self.name}/{self.version}"
        return f"{PREFIX}{self.name}@{self.alias}" if self.alias else f"{PREFIX}{self.name}"


def is_registry_ref(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_ref(text: str) -> ModelRef:
    match = _REF.fullmatch(text.removeprefix(PREFIX))
    if not match:
        raise RegistryError(
            f"bad model reference {text!r}", hint="use NAME, NAME/VERSION or NAME@ALIAS"
        )
    return ModelRef(check_name(match["name"]), match["version"], match["alias"])


def check_name(name: str) -> str:
    """A registered model name, refused unless it keeps to NAME_RULE: names go into MLflow
    filter strings and cache paths, where a quote or `..` would change what they mean."""
    if bad_name(name):
        raise RegistryError(f"bad registered model name {name!r}", hint=NAME_RULE)
    return name
