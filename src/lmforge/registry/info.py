"""What `registry list / show / diff` print: versions with their aliases, metrics, lineage and
training config, side by side for diff."""

from __future__ import annotations

from typing import Any

from lmforge.registry.register import stored_training_config
from lmforge.registry.versions import TAG, version_metrics


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


def diff_rows(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(field, left, right, differs) for data, lineage, metrics and config."""
    rows = []
    for key in ("task", "parent", "dataset_sha256", "model_sha256"):
        rows.append((key, str(left[key]), str(right[key]), left[key] != right[key]))
    for section in ("metrics", "config"):
        names = sorted(set(left[section]) | set(right[section]))
        for name in names:
            a, b = left[section].get(name, "-"), right[section].get(name, "-")
            shown_a = f"{a:.4f}" if isinstance(a, float) else str(a)
            shown_b = f"{b:.4f}" if isinstance(b, float) else str(b)
            rows.append((f"{section}.{name}", shown_a, shown_b, a != b))
    return rows
