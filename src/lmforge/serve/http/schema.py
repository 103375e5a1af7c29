"""The OpenAPI schema of the model this server serves. A body that the schema accepts must be
accepted (schemathesis holds the server to it), and what a body needs depends on the model:
a language model classifies zero-shot, so /v1/classify needs `labels` there, while a
classifier has labels of its own."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from lmforge.serve.state import AppState


def install_model_schema(app: FastAPI, state: AppState) -> None:
    """`app.openapi()` as FastAPI builds it, then fitted to the served model (read at each
    call: a reload may swap in a model of another kind)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's, cached: fitted on a copy
        if state.model.kind == "classifier":
            return schema
        fitted = copy.deepcopy(schema)
        classify = fitted["components"]["schemas"]["ClassifyRequest"]
        labels = classify["properties"]["labels"]
        given = next(branch for branch in labels.pop("anyOf") if branch.get("type") == "array")
        labels.update(given)
        classify["required"] = [*classify.get("required", []), "labels"]
        return fitted

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
