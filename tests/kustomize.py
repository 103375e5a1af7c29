"""Just enough of kustomize to render deploy/k8s offline in the tests: `resources` (files and
directories), `labels` (metadata only), strategic-merge `patches` (maps merged, lists of
named items merged by name, other lists replaced) and `images` (new tags)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        if all(isinstance(x, dict) and "name" in x for x in base + patch):
            by_name = {x["name"]: x for x in base}
            out = [_merge(by_name[x["name"]], x) if x["name"] in by_name else x for x in patch]
            patched = {x["name"] for x in patch}
            return [x for x in base if x["name"] not in patched] + out
        return copy.deepcopy(patch)
    return copy.deepcopy(patch)


def _key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def render(directory: Path) -> list[dict]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        body = yaml.safe_load((directory / patch["path"]).read_text())
        docs = [_merge(d, body) if _key(d) == _key(body) else d for d in docs]
    for image in spec.get("images", []):
        for doc in docs:
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    for group in spec.get("labels", []):
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(group["pairs"])
    return docs
