"""Classifiers served by the real server: one trained by `lmforge train --task
classification`, one built with three labels. /v1/classify runs the head (all its labels, a
subset renormalised, an unknown label 422), a text too long keeps its end, and /v1/models
shows the kind and the labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import corpus, run_cli
from tests.integration.servers import Server
from tests.unit.test_serve_classifier import LABELS, build_classifier

pytestmark = pytest.mark.integration
TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate"]


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("classifier")
    rows = corpus("sst2/dev_from_train.tsv").read_text(encoding="utf-8").splitlines()[:201]
    (work / "sst.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run_cli(
        "train",
        *("--task", "classification", "--init", str(tiny_model)),
        *("--data", str(work / "sst.tsv"), "--text-column", "sentence"),
        *("--output", str(work / "cls"), "--max-steps", "4", "--eval-steps", "2"),
        *("--batch-size", "8", "--no-track"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "cls"


@pytest.fixture(scope="module")
def server(trained: Path):
    running = Server(trained, "--request-timeout", "30")
    yield running
    assert running.stop() == 0, running.stderr()


def test_models_shows_a_classifier_and_its_labels(server: Server, trained: Path) -> None:
    (card,) = server.client().get("/v1/models").json()["data"]
    id2label = json.loads((trained / "config.json").read_text(encoding="utf-8"))["id2label"]
    assert card["kind"] == "classifier" and card["labels"] == ["0", "1"]
    assert card["labels"] == [id2label[str(i)] for i in range(len(id2label))]


def test_classify_runs_the_head_without_labels(server: Server) -> None:
    client = server.client()
    response = client.post("/v1/classify", json={"text": TEXTS})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for result in results:
        scores = result["scores"]
        assert list(scores) == ["0", "1"] and math.isclose(sum(scores.values()), 1, abs_tol=1e-5)
        assert result["label"] == max(scores, key=scores.__getitem__)
    # The same text whatever its neighbours; all the labels given, the same probabilities.
    alone = client.post("/v1/classify", json={"text": TEXTS[1]}).json()["results"][0]
    assert alone["scores"] == pytest.approx(results[1]["scores"], abs=1e-5)
    given = client.post("/v1/classify", json={"text": TEXTS[0], "labels": ["1", "0"]})
    assert given.json()["results"][0]["scores"] == pytest.approx(results[0]["scores"], abs=1e-6)


def test_a_text_longer_than_the_context_keeps_its_end(server: Server) -> None:
    """Two long texts that differ only at their beginning classify alike."""
    tail = " so dull ." * 400
    body = {"text": [TEXTS[0] + tail, TEXTS[1] + tail]}
    response = server.client().post("/v1/classify", json=body)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["scores"] == pytest.approx(second["scores"], abs=1e-6)


def test_an_unknown_label_is_refused_naming_it(server: Server) -> None:
    response = server.client().post(
        "/v1/classify", json={"text": "fine", "labels": ["1", "positive", "meh"]}
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "no label 'positive', 'meh'" in message and "labels are '0', '1'" in message


def test_generating_with_a_classifier_is_refused_saying_why(server: Server) -> None:
    response = server.client().post("/v1/generate", json={"prompt": "the movie"})
    assert response.status_code == 422, response.text
    assert "classifier" in response.json()["error"]["message"]


def test_a_subset_of_labels_is_renormalised_over_itself(tiny_model: Path, tmp_path: Path) -> None:
    running = Server(build_classifier(tiny_model, tmp_path / "three"))
    try:
        client = running.client()
        (card,) = client.get("/v1/models").json()["data"]
        assert card["kind"] == "classifier" and card["labels"] == LABELS
        full = client.post("/v1/classify", json={"text": TEXTS[0]}).json()["results"][0]
        subset = ["positive", "negative"]
        body = {"text": TEXTS[0], "labels": subset}
        (some,) = client.post("/v1/classify", json=body).json()["results"]
        total = sum(full["scores"][label] for label in subset)
        expected = {label: full["scores"][label] / total for label in subset}
        assert some["scores"] == pytest.approx(expected, abs=1e-6)
        assert list(some["scores"]) == subset and some["label"] in subset
    finally:
        assert running.stop() == 0, running.stderr()
