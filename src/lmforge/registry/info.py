"""`registry list / show / diff`: versions with their aliases, metrics (the card's and those
`lmforge eval` recorded), eval records, file sha256s, lineage, tags and training config, as
plain dicts (what `--json` prints and the tables show), side by side for diff."""

from __future__ import annotations

import json
import logging
from typing import Any

from lmforge.config.registry import DiffConfig, ListConfig, ShowConfig
from lmforge.registry.evals import EVAL_TAG, METRIC_TAG, eval_records
from lmforge.registry.query import every_version
from lmforge.registry.refs import ModelRef, parse_ref
from lmforge.registry.register import CONFIG_TAG, stored_training_config
from lmforge.registry.store import client as store_client
from lmforge.registry.versions import TAG, get_version, version_metrics

log = logging.getLogger(__name__)
FILES_TAG = f"{TAG}files_sha256"
# Tags `describe` shows in their own structured fields rather than under `tags`.
_STRUCTURED = (METRIC_TAG, EVAL_TAG, CONFIG_TAG, FILES_TAG)


def _files(tags: dict[str, str]) -> dict[str, str]:
    try:
        files = json.loads(tags.get(FILES_TAG) or "{}")
    except json.JSONDecodeError:
        return {}
    return files if isinstance(files, dict) else {}


def describe(version: Any) -> dict[str, Any]:
    tags = version.tags
    return {
        "name": version.name,
        "version": str(version.version),
        "ref": f"models:/{version.name}/{version.version}",
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
        "evals": eval_records(version),
        "files": _files(tags),
        "tags": {k: v for k, v in sorted(tags.items()) if not k.startswith(_STRUCTURED)},
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


def models_summary(versions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NAME: {versions, latest, aliases: {alias: version}} over described versions."""
    models: dict[str, dict[str, Any]] = {}
    for v in versions:
        entry = models.setdefault(v["name"], {"versions": 0, "latest": None, "aliases": {}})
        entry["versions"] += 1
        if entry["latest"] is None or int(v["version"]) > int(entry["latest"]):
            entry["latest"] = v["version"]
        entry["aliases"].update({alias: v["version"] for alias in v["aliases"]})
    return models


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
