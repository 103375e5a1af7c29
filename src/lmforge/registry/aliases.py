"""Alias moves with their history: every move is appended to the registered model's history
tag for that alias, which `rollback` walks back."""

from __future__ import annotations

import getpass
import json
import time
from typing import Any

from lmforge.registry.versions import TAG

HISTORY_KEEP = 40


def _history_key(alias: str) -> str:
    return f"{TAG}alias_history.{alias}"


def alias_history(client: Any, name: str, alias: str) -> list[dict[str, Any]]:
    model = client.get_registered_model(name)
    history: list[dict[str, Any]] = json.loads(model.tags.get(_history_key(alias), "[]"))
    return history


def move_alias(client: Any, name: str, alias: str, version: str, entry: dict[str, Any]) -> None:
    """Point `alias` at `version` and record the move (with `entry`) in its history."""
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
