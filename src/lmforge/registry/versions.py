"""Looking up registered models and versions with errors that say what exists."""

from __future__ import annotations

import json
from typing import Any

from lmforge.errors import RegistryError
from lmforge.registry.query import by_name
from lmforge.registry.refs import ModelRef

TAG = "lmforge."


def get_version(client: Any, ref: ModelRef) -> Any:
    """The ModelVersion a reference names (alias, version, or the newest), with its aliases
    (search results leave them out, so the version is fetched by number)."""
    found = _find_version(client, ref)
    return client.get_model_version(found.name, str(found.version))


def _find_version(client: Any, ref: ModelRef) -> Any:
    from mlflow.exceptions import MlflowException

    versions = client.search_model_versions(by_name(ref.name))
    if not versions:
        known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none"
        raise RegistryError(f"no registered model {ref.name!r}", hint=f"registered: {known}")
    if ref.alias:
        try:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        except MlflowException:
            aliases = sorted({a for v in versions for a in v.aliases}) or ["none"]
            raise RegistryError(
                f"{ref.name} has no alias {ref.alias!r}", hint=f"aliases: {', '.join(aliases)}"
            ) from None
    if ref.version:
        for version in versions:
            if str(version.version) == ref.version:
                return version
        numbers = ", ".join(sorted((str(v.version) for v in versions), key=int))
        raise RegistryError(f"{ref.name} has no version {ref.version}", hint=f"versions: {numbers}")
    return max(versions, key=lambda v: int(v.version))


def version_metrics(version: Any) -> dict[str, float]:
    prefix = f"{TAG}metric."
    return {k[len(prefix) :]: float(v) for k, v in version.tags.items() if k.startswith(prefix)}


def version_files(version: Any) -> dict[str, str]:
    raw = version.tags.get(f"{TAG}files_sha256")
    if not raw:
        raise RegistryError(f"version {version.name}/{version.version} has no recorded sha256s")
    files: dict[str, str] = json.loads(raw)
    return files
