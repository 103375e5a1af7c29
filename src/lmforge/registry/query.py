"""MLflow search filter strings, spelled in one place (MLflow's SQL-like filter syntax)."""

from __future__ import annotations


def by_name(name: str) -> str:
    """Versions of one registered model."""
    return f"name = '{name}'"


def by_tag(key: str, value: str) -> str:
    """Versions whose tag `key` (which may contain dots) equals `value`."""
    return f"tags.`{key}` = '{value}'"


def every_version(name: str = "") -> str:
    """Versions of `name`, or of every model when it is empty."""
    return by_name(name) if name else ""
