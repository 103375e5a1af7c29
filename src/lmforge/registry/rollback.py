"""`registry rollback`: move an alias back to its previous holder, from the alias history."""

from __future__ import annotations

from lmforge.config.registry import RollbackConfig
from lmforge.errors import RegistryError
from lmforge.registry.aliases import alias_history, move_alias
from lmforge.registry.refs import ModelRef
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import get_version


def rollback(config: RollbackConfig) -> tuple[str, str]:
    """Move `config.alias` back to the holder before the current one; returns (from, to)."""
    client = store_client()
    name, alias = config.name, config.alias
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
    move_alias(client, name, alias, previous, {"from": current["version"], "rollback": True})
    return str(current["version"]), str(previous)
