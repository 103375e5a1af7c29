"""The OpenAPI schema of the models this server serves. A body that the schema accepts must be
accepted (schemathesis holds the server to it), and what a body may hold depends on the
models: each route's `model` is one of the served models that can do its task (required when
no single one is the default), and a language model classifies zero-shot, so /v1/classify
needs `labels` where a language model may answer it, while a classifier has labels of its own."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from lmforge.serve.http.deps import Inference
from lmforge.serve.models import CLASSIFIER, CLASSIFY, Task
from lmforge.serve.state import AppState


def install_model_schema(app: FastAPI, state: AppState) -> None:
    """`app.openapi()` as FastAPI builds it, then fitted to the served models (read at each
    call: a reload may swap in a model of another kind)."""
    generate = app.openapi
    tasks = route_tasks(app)

    def openapi() -> dict[str, Any]:
        fitted = copy.deepcopy(generate())  # FastAPI's, cached: fitted on a copy
        components = fitted["components"]["schemas"]
        for path, task in tasks.items():
            operation = fitted["paths"][path]["post"]
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            for name in referenced(body):
                fit_model_field(components[name], state, task)
        fit_classify(components["ClassifyRequest"], state)
        return fitted

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def route_tasks(app: FastAPI) -> dict[str, Task]:
    """Each inference route's path and the task its `Inference` dependency picks a model for."""
    found = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for dependency in route.dependant.dependencies:
                if isinstance(dependency.call, Inference):
                    found[route.path] = dependency.call.task
    return found


def referenced(schema: dict[str, Any]) -> list[str]:
    """The component names a request body's schema refers to (one, or a union's)."""
    if "$ref" in schema:
        return [schema["$ref"].rsplit("/", 1)[-1]]
    branches = schema.get("anyOf", []) + schema.get("oneOf", [])
    return [name for branch in branches for name in referenced(branch)]


def fit_model_field(component: dict[str, Any], state: AppState, task: Task) -> None:
    """`model`: one of the names that can do `task`; required when there is no default."""
    field = component.get("properties", {}).get("model")
    names = [served.name for served in state.models.candidates(task)]
    if field is None or not names:
        return  # a route no served model can answer refuses every body anyway
    named = {"type": "string", "enum": names}
    field.pop("anyOf", None)
    field.pop("type", None)
    if state.models.default(task) is None:
        field.update(named)
        component["required"] = [*component.get("required", []), "model"]
    else:
        field["anyOf"] = [named, {"type": "null"}]


def fit_classify(classify: dict[str, Any], state: AppState) -> None:
    """`labels` required where a language model may classify (zero-shot needs them)."""
    if all(served.info.kind == CLASSIFIER for served in state.models.candidates(CLASSIFY)):
        return
    labels = classify["properties"]["labels"]
    given = next(branch for branch in labels.pop("anyOf") if branch.get("type") == "array")
    labels.update(given)
    classify["required"] = [*classify.get("required", []), "labels"]
