"""`registry list / show / diff`: versions with their aliases, metrics, lineage and training
config, as plain dicts (what `--json` prints and the tables show), side by side for diff."""

from __future__ import annotations

import logging
from typing import Any

from lmforge.config.registry import DiffConfig, ListConfig, ShowConfig
from lmforge.registry.query import every_version
from lmforge.registry.refs import ModelRef, parse_ref
from lmforge.registry.register import stored_training_config
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import TAG, get_version, version_metrics

log = logging.getLogger(__name__)


def describe(version: Any) -> dict[str, Any]:
    tags = version.tags
    return {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(version.aliases),
        "created": version.creation_timestamp,
        "run_id": version.run_id,
        "source": version.source,
        "task": tags.get(f"{TAG}task", ""),
        "parent": tags.get(f"{TAG}parent", ""),
        "parent_relation": tags.get(f"{TAG}parent_relation", ""),
        "dataset_sha256": tags.get(f"{TAG}dataset_sha256", ""),
        "model_sha256": tags.get(f"{TAG}model_sha256", ""),
        "forced_by": tags.get(f"{TAG}forced_by", ""),
        "force_reason": tags.get(f"{TAG}force_reason", ""),
        "metrics": version_metrics(version),
        "config": stored_training_config(tags),
    }


def registration(version: Any) -> dict[str, Any]:
    """What `registry register` reports about the version it created."""
    return {
        "name": version.name,
        "version": str(version.version),
        "ref": f"models:/{version.name}/{version.version}",
        "run_id": version.run_id,
        "parent": version.tags.get(f"{TAG}parent") or None,
    }


def list_versions(config: ListConfig) -> list[dict[str, Any]]:
    """Every version of `config.name` (or of every model), by name and version number."""
    store = store_client()
    # Search results leave the aliases out, so each version is fetched by number.
    versions = [
        describe(store.get_model_version(v.name, str(v.version)))
        for v in store.search_model_versions(every_version(config.name))
    ]
    return sorted(versions, key=lambda d: (d["name"], int(d["version"])))


def show_version(config: ShowConfig) -> dict[str, Any]:
    return describe(get_version(store_client(), parse_ref(config.ref)))


def diff_versions(config: DiffConfig) -> dict[str, Any]:
    """{name, left, right, rows: [{field, left, right, differs}]} of two versions."""
    store = store_client()
    left = describe(get_version(store, ModelRef(config.name, version=config.left)))
    right = describe(get_version(store, ModelRef(config.name, version=config.right)))
    rows = diff_rows(left, right)
    return {"name": config.name, "left": config.left, "right": config.right, "rows": rows}


def diff_rows(left: dict[str, Any], right: dict[str, Any]) -> list[dict[str, Any]]:
    """Data, lineage, metrics and config of two described versions, field by field."""
    rows = []
    for key in ("task", "parent", "dataset_sha256", "model_sha256"):
        rows.append(_row(key, str(left[key]), str(right[key]), left[key] != right[key]))
    for section in ("metrics", "config"):
        names = sorted(set(left[section]) | set(right[section]))
        for name in names:
            a, b = left[section].get(name, "-"), right[section].get(name, "-")
            rows.append(_row(f"{section}.{name}", _shown(a), _shown(b), a != b))
    return rows


def _row(field: str, left: str, right: str, differs: bool) -> dict[str, Any]:
    return {"field": field, "left": left, "right": right, "differs": differs}


def _shown(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
