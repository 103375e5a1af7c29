"""`registry delete`: remove a version, refused while it holds an alias (serving may use it)."""

from __future__ import annotations

from lmforge.config.registry import DeleteConfig
from lmforge.errors import RegistryError
from lmforge.registry.refs import ModelRef
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import get_version


def delete_version(config: DeleteConfig) -> None:
    client = store_client()
    found = get_version(client, ModelRef(config.name, version=config.version))
    if found.aliases:
        raise RegistryError(
            f"{config.name}/{config.version} holds @{', @'.join(found.aliases)}",
            hint="promote another version (or roll back) first",
        )
    client.delete_model_version(config.name, config.version)
