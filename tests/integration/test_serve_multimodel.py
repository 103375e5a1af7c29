"""Several models in one real server: a generator, a classifier and a summarizer, each on its
own engine. Every route with and without `model`, an unknown model (404 `model_not_found`), a
model of the wrong kind, /v1/models, per-model metrics, and a hot swap of the classifier while
the generator keeps serving."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from lmforge.cards import ModelCard
from tests.integration.servers import ADMIN_KEY, Server, steady_load, wait_for
from tests.unit.test_serve_classifier import LABELS, build_classifier

pytestmark = pytest.mark.integration
NAMES = {"gen": "generator", "cls": "classifier", "sum": "summarizer"}


def as_summarizer(lm_dir: Path, path: Path) -> Path:
    """The tiny LM as a summarizer: its card's task says so (what `train --task
    summarization` writes), which is what makes it one."""
    shutil.copytree(lm_dir, path)
    card = ModelCard.read(path) or ModelCard()
    card.task = "summarization"
    card.write(path)
    return path


def flip_head(path: Path) -> None:
    """A new version of the classifier in place: its head negated, the card re-hashed."""
    from safetensors.torch import load_file, save_file

    weights = load_file(path / "model.safetensors")
    weights["score.weight"] = -weights["score.weight"]
    save_file({k: v.contiguous() for k, v in weights.items()}, path / "model.safetensors")
    (ModelCard.read(path) or ModelCard()).write(path)


@pytest.fixture(scope="module")
def dirs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("multimodel")
    return {
        "gen": tiny_model,
        "cls": build_classifier(tiny_model, work / "cls"),
        "sum": as_summarizer(tiny_model, work / "sum"),
    }


@pytest.fixture(scope="module")
def server(dirs: dict[str, Path]):
    gen, *others = (f"{name}={path}" for name, path in dirs.items())
    slots = ("--kv-slots", "4", "--model-kv-slots", "cls=2,sum=2")
    running = Server(gen, *others, *slots, "--request-timeout", "30")
    yield running
    assert running.stop() == 0, running.stderr()


def test_models_lists_every_model_with_its_kind(server: Server) -> None:
    cards = {card["id"]: card for card in server.client().get("/v1/models").json()["data"]}
    assert {name: card["kind"] for name, card in cards.items()} == NAMES
    assert cards["cls"]["labels"] == LABELS and cards["gen"]["labels"] is None
    assert all(len(card["sha256"]) == 64 and card["context_length"] for card in cards.values())


# Each route's body, and which model answers it when the body names none.
ROUTES = {
    "/v1/generate": ({"prompt": "the", "max_new_tokens": 2}, "gen"),
    "/v1/completions": ({"prompt": "the", "max_tokens": 2}, "gen"),
    "/v1/embeddings": ({"input": "the cat"}, "gen"),
    "/v1/tokenize": ({"text": "the cat"}, "gen"),
    "/v1/classify": ({"text": "a fine film"}, "cls"),
    "/v1/match": ({"text_a": "a cat", "text_b": "a dog"}, "gen"),
    "/v1/summarize": ({"text": "the cat sat on the mat .", "max_new_tokens": 2}, "sum"),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_route_defaults_to_its_kind_and_takes_a_named_model(
    server: Server, route: str
) -> None:
    body, default = ROUTES[route]
    with server.client() as client:
        before = requests_of(server, route, default)
        assert client.post(route, json=body).status_code == 200
        assert requests_of(server, route, default) == before + 1  # went to the default
        able = [n for n in NAMES if n == default or NAMES[n] in ("generator", "summarizer")]
        if route == "/v1/classify":
            able, body = ["cls", "gen", "sum"], {**body, "labels": LABELS[:2]}
        for name in able:
            answer = client.post(route, json={**body, "model": name})
            assert answer.status_code == 200, (name, answer.text)
            if route in ("/v1/completions", "/v1/embeddings"):
                assert answer.json()["model"] == name


def requests_of(server: Server, route: str, model: str) -> float:
    try:
        return server.metric(
            f'lmforge_requests_total{{model="{model}",route="{route}",status="200"}}'
        )
    except KeyError:
        return 0.0


@pytest.mark.parametrize("route", ["/v1/generate", "/v1/completions", "/v1/classify"])
def test_an_unknown_model_is_404_model_not_found_naming_the_served_ones(
    server: Server, route: str
) -> None:
    body, _ = ROUTES[route]
    answer = server.client().post(route, json={**body, "model": "nope"})
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert error["type"] == "model_not_found" and error["param"] == "model"
    assert "'nope'" in error["message"]
    assert all(f"'{name}'" in error["message"] for name in NAMES)


def test_a_model_of_the_wrong_kind_is_refused_saying_what_it_can_do(server: Server) -> None:
    with server.client() as client:
        native = client.post("/v1/generate", json={"prompt": "the", "model": "cls"})
        openai = client.post("/v1/completions", json={"prompt": "the", "model": "cls"})
        summary = client.post("/v1/summarize", json={"text": "the cat", "model": "cls"})
    assert (native.status_code, openai.status_code, summary.status_code) == (422, 400, 422)
    message = native.json()["error"]["message"]
    assert "'cls' is a classifier" in message and "can classify" in message
    assert "'gen'" in message  # and which served model can
    assert native.json()["error"]["param"] == "model"


def test_metrics_carry_the_model(server: Server) -> None:
    with server.client() as client:
        client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 3, "model": "sum"})
        text = client.get("/metrics").text
    info = [line for line in text.splitlines() if line.startswith("lmforge_model_info{")]
    for name, kind in NAMES.items():
        (line,) = [line for line in info if f'model="{name}"' in line]
        assert f'kind="{kind}"' in line and 'sha256="' in line
        assert f'lmforge_kv_slot_usage{{model="{name}"}}' in text
    assert 'lmforge_generated_tokens_count{model="sum"}' in text
    assert 'lmforge_time_to_first_token_seconds_count{model="sum"}' in text


def test_a_hot_swap_of_one_model_while_the_other_serves(
    server: Server, dirs: dict[str, Path]
) -> None:
    text = {"text": "a fine film"}
    with server.client() as client:
        before = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
        scores = client.post("/v1/classify", json=text).json()["results"][0]["scores"]
    flip_head(dirs["cls"])

    def generated_past(count: float) -> bool:
        return requests_of(server, "/v1/generate", "gen") > count

    with steady_load(server) as failures, server.client(ADMIN_KEY) as admin:
        wait_for(partial(generated_past, requests_of(server, "/v1/generate", "gen")), "a load")
        swapped = admin.post("/admin/reload", params={"model": "cls"})
        # The generator serves on after the swap, as it did during it.
        wait_for(partial(generated_past, requests_of(server, "/v1/generate", "gen")), "more")
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["model"] == "cls" and failures == []
    with server.client() as client:
        after = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
        rescored = client.post("/v1/classify", json=text).json()["results"][0]["scores"]
    assert after["cls"]["sha256"] == swapped.json()["sha256"] != before["cls"]["sha256"]
    assert after["gen"] == before["gen"]  # the other model was not touched
    assert rescored != scores
    with server.client(ADMIN_KEY) as admin:
        unnamed = admin.post("/admin/reload")
        unknown = admin.post("/admin/reload", params={"model": "nope"})
    assert (
        unnamed.status_code == 400 and "'gen', 'cls', 'sum'" in unnamed.json()["error"]["message"]
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "model_not_found"
