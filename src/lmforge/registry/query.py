"""MLflow search filter strings, spelled in one place (MLflow's SQL-like filter syntax). Every
value is checked before it is quoted: a quote in it would end the string and change the query."""

from __future__ import annotations

import re

from lmforge.errors import RegistryError
from lmforge.registry.refs import check_name

# Tag values we search by are sha256s and names: nothing that needs escaping.
_PLAIN = re.compile(r"[A-Za-z0-9._/@:-]*")


def by_name(name: str) -> str:
    """Versions of one registered model."""
    return f"name = '{check_name(name)}'"


def by_tag(key: str, value: str) -> str:
    """Versions whose tag `key` (which may contain dots) equals `value`."""
    for part in (key, value):
        if not _PLAIN.fullmatch(part):
            raise RegistryError(f"cannot search the registry for {part!r}: it has quotes or spaces")
    return f"tags.`{key}` = '{value}'"


def every_version(name: str = "") -> str:
    """Versions of `name`, or of every model when it is empty."""
    return by_name(name) if name else ""
