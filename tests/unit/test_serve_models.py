"""The routing rules of several models in one server: the kind read from head and card, the
default per route's task, ambiguity, unknown names and wrong kinds, in-process over a real
engine; and what the app makes of them (statuses, /v1/models, the fitted OpenAPI schema)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.serve import models as m
from lmforge.serve.engine import Engine
from lmforge.serve.models import ModelInfo, ModelSet, ServedModel
from tests.unit.inprocess import app_state, client, running_engine


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as running:
        yield running


def test_the_kind_is_read_from_the_head_and_the_card_task() -> None:
    assert m.model_kind("lm", has_head=False) == "generator"
    assert m.model_kind("summarization", has_head=False) == "summarizer"
    assert m.model_kind("classification", has_head=True) == "classifier"
    assert m.model_kind("matching", has_head=True) == "matcher"
    # A head decides: a card task of a language model does not make a head model one.
    assert m.model_kind("summarization", has_head=True) == "classifier"


def test_serve_takes_named_models_and_their_own_kv_slots() -> None:
    from lmforge.config import build_config
    from lmforge.config.serve import ServeConfig
    from lmforge.errors import ConfigError

    config = build_config(
        ServeConfig, {"model": ["gen=models:/p@prod", "cls=dir"], "model_kv_slots": "cls=2"}, "cli"
    )
    assert config.named_refs() == [("gen", "models:/p@prod"), ("cls", "dir")]
    assert config.kv_slots_of() == {"cls": 2}
    plain = build_config(ServeConfig, {"model": "models/a=b", "model_name": "x"}, "cli")
    assert plain.named_refs() == [("x", "models/a=b")]  # a path, not a name, before '='
    with pytest.raises(ConfigError, match=r"'cls=0' is not NAME=SLOTS.*names a single model"):
        build_config(
            ServeConfig,
            {"model": ["a=x", "b=y"], "model_kv_slots": "cls=0", "model_name": "n"},
            "cli",
        )


def named(served: tuple[Engine, ModelInfo], name: str, kind: str) -> ServedModel:
    """A served model called `name`, read as `kind` (the rules look at its info only)."""
    engine, info = served
    task = {"matcher": "matching", "summarizer": "summarization"}.get(kind, "lm")
    labels = ("a", "b") if kind in ("classifier", "matcher") else ()
    return ServedModel(engine, dataclasses.replace(info, name=name, labels=labels, task=task))


def test_each_task_defaults_to_the_one_model_of_its_best_kind(
    served: tuple[Engine, ModelInfo],
) -> None:
    models = ModelSet(
        [named(served, n, k) for n, k in (("gen", "generator"), ("cls", "classifier"))]
    )
    chosen = {task.verb: models.choose(task, None).name for task in m.TASKS}
    assert chosen == {
        "generate text": "gen",
        "embed": "gen",
        "classify": "cls",
        "match": "gen",  # no matcher: a language model's embeddings
        "summarize": "gen",  # no summarizer: the generator
        "tokenize": "gen",
    }
    assert models.choose(m.CLASSIFY, "gen").name == "gen"  # zero-shot, when named
    with pytest.raises(m.UnknownModel) as huge:
        models.choose(m.GENERATE, "x" * 100_000)
    assert len(str(huge.value)) < 200  # named, not echoed
    with pytest.raises(m.UnknownModel, match=r"'nope' does not exist.*'gen', 'cls'"):
        models.choose(m.GENERATE, "nope")
    with pytest.raises(m.WrongKind, match=r"'cls' is a classifier: it can classify, tokenize"):
        models.choose(m.GENERATE, "cls")
    with pytest.raises(m.WrongKind, match=r"to summarize, use a summarizer or generator such"):
        models.choose(m.SUMMARIZE, "cls")


def test_two_of_a_kind_make_the_default_ambiguous_and_a_name_picks(
    served: tuple[Engine, ModelInfo],
) -> None:
    models = ModelSet([named(served, n, "generator") for n in ("a", "b")])
    with pytest.raises(m.AmbiguousModel, match=r"more than one .* \('a', 'b'\)"):
        models.choose(m.GENERATE, None)
    assert models.default(m.GENERATE) is None
    assert models.choose(m.GENERATE, "b").name == "b"
    only_classifier = ModelSet([named(served, "cls", "classifier")])
    with pytest.raises(m.WrongKind, match=r"no served model can generate text.*'cls' is a"):
        only_classifier.choose(m.GENERATE, None)


def test_the_app_answers_the_rules_and_fits_the_schema(
    served: tuple[Engine, ModelInfo],
) -> None:
    engine, info = served
    a, b = (dataclasses.replace(info, name=n) for n in ("a", "b"))
    with client(app_state((engine, a), (engine, b))) as test_client:
        body = {"prompt": "the", "max_new_tokens": 2}
        ambiguous = test_client.post("/v1/generate", json=body)
        picked = test_client.post("/v1/generate", json={**body, "model": "b"})
        unknown = test_client.post("/v1/completions", json={"prompt": "x", "model": "c"})
        listed = test_client.get("/v1/models").json()["data"]
        schema = test_client.get("/openapi.json").json()["components"]["schemas"]
    assert ambiguous.status_code == 400 and "('a', 'b')" in ambiguous.json()["error"]["message"]
    assert picked.status_code == 200, picked.text
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "model_not_found"
    assert [card["id"] for card in listed] == ["a", "b"]
    generate = schema["GenerateRequest"]
    assert "model" in generate["required"]  # no default: a request must name one
    assert generate["properties"]["model"]["enum"] == ["a", "b"]


def test_a_single_model_is_the_default_and_its_name_is_optional(
    served: tuple[Engine, ModelInfo],
) -> None:
    with client(app_state(served)) as test_client:
        schema = test_client.get("/openapi.json").json()["components"]["schemas"]
        unnamed = test_client.post("/v1/tokenize", json={"text": "the"})
    assert unnamed.status_code == 200
    field = schema["TokenizeRequest"]["properties"]["model"]
    assert field["anyOf"] == [{"type": "string", "enum": [served[1].name]}, {"type": "null"}]
    assert "model" not in schema["TokenizeRequest"].get("required", [])
    assert "labels" in schema["ClassifyRequest"]["required"]  # a language model: zero-shot
