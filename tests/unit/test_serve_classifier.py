"""A GPT2ForSequenceClassification dir served as a classifier: the head's probabilities equal
transformers', classify requests share steps with other kinds, and each head refuses the
requests only the other can run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from lmforge.cards import ModelCard
from lmforge.config.serve import EngineSettings
from lmforge.errors import EngineError
from lmforge.serve.engine import Engine
from lmforge.serve.request import FinishReason, Kind, Request
from lmforge.serve.stream import Event, wait

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["the cat sat on the mat", "hello", "café naïve résumé, hello world " * 3]


def build_classifier(lm_dir: Path, path: Path) -> Path:
    """A random 3-label classifier on the tiny LM's body, saved as `train --task
    classification` saves one (config architectures, id2label, pad_token_id; score.weight)."""
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(3)
    model = GPT2ForSequenceClassification.from_pretrained(
        lm_dir,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        pad_token_id=0,
    )
    with torch.no_grad():  # a head far from zero, so the probabilities differ per text
        model.score.weight.normal_(0, 2.0)
    model.eval().save_pretrained(path)
    shutil.copy(lm_dir / "tokenizer.json", path / "tokenizer.json")
    ModelCard().write(path)
    return path


@pytest.fixture(scope="module")
def classifier_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier(tiny_model, tmp_path_factory.mktemp("classifier") / "model")


def expected(classifier_dir: Path, engine: Engine, text: str) -> list[float]:
    from transformers import GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.no_grad():
        logits = model(torch.tensor([engine.encode(text)])).logits[0]
    return [float(p) for p in logits.softmax(-1)]


def classify(engine: Engine, text: str) -> list[float]:
    event = engine.run(engine.request(text, Kind.CLASSIFY))
    assert event.finish_reason is FinishReason.STOP, (event.finish_reason, event.error)
    return event.scores or []


@pytest.mark.parametrize("step_tokens", [2048, 5])
def test_head_probabilities_match_transformers(classifier_dir: Path, step_tokens: int) -> None:
    """Whole prompts and prompts cut into 5-token prefill chunks give transformers' softmax."""
    settings = EngineSettings(kv_slots=4, max_batch_tokens=step_tokens)
    with Engine(classifier_dir, settings) as engine:
        assert engine.labels == LABELS
        for text in TEXTS:
            probabilities = classify(engine, text)
            assert probabilities == pytest.approx(expected(classifier_dir, engine, text), abs=1e-4)
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)


def test_classify_requests_share_steps_with_other_kinds(classifier_dir: Path) -> None:
    """Queued before the loop starts, classify and embed requests run in one step and give
    what they give alone."""
    engine = Engine(classifier_dir, EngineSettings(kv_slots=8))
    kinds_per_step: list[set[Kind]] = []
    step = engine.runner.step

    def spy(chunks):  # type: ignore[no-untyped-def]
        kinds_per_step.append({chunk.request.kind for chunk in chunks})
        return step(chunks)

    engine.runner.step = spy  # type: ignore[method-assign]
    requests = [engine.request(t, Kind.CLASSIFY) for t in TEXTS]
    requests += [engine.request(t, Kind.EMBED) for t in TEXTS]
    streams = [engine.submit(r) for r in requests]
    with engine.start():
        pairs = zip(requests, streams, strict=True)
        events = [wait(r.request_id, s, lambda: None) for r, s in pairs]
        assert {Kind.CLASSIFY, Kind.EMBED} <= kinds_per_step[0]
        for text, event in zip(TEXTS, events[: len(TEXTS)], strict=True):
            assert event.scores == pytest.approx(classify(engine, text), abs=1e-5)
        for text, event in zip(TEXTS, events[len(TEXTS) :], strict=True):
            alone = engine.run(engine.request(text, Kind.EMBED)).embedding
            assert event.embedding == pytest.approx(alone, abs=1e-5)


def test_each_head_refuses_what_only_the_other_can_run(
    classifier_dir: Path, tiny_model: Path
) -> None:
    with Engine(classifier_dir, EngineSettings(kv_slots=2)) as engine:
        with pytest.raises(EngineError, match=r"classifier .*cannot run generate"):
            engine.submit(engine.request("hi", Kind.GENERATE))
        with pytest.raises(EngineError, match=r"classifier .*cannot run score"):
            engine.submit(Request(engine.encode("the cat"), Kind.SCORE, score_from=1))
    with (
        Engine(tiny_model, EngineSettings(kv_slots=2)) as engine,
        pytest.raises(EngineError, match="no classification head"),
    ):
        engine.submit(engine.request("hi", Kind.CLASSIFY))


def test_classify_requests_keep_deadlines_and_aborts(classifier_dir: Path) -> None:
    engine = Engine(classifier_dir, EngineSettings(kv_slots=2))
    late = engine.request("the cat", Kind.CLASSIFY, timeout=0.01)
    gone = engine.request("the cat", Kind.CLASSIFY)
    streams = [engine.submit(late), engine.submit(gone)]
    engine.abort(gone)
    time.sleep(0.05)
    with engine.start():
        events: list[Event] = [
            wait(r.request_id, s, lambda: None) for r, s in zip([late, gone], streams, strict=True)
        ]
    assert [e.finish_reason for e in events] == [FinishReason.TIMEOUT, FinishReason.ABORT]
    assert events[0].scores == [] and engine.scheduler.slots_used == 0


def test_an_lm_warm_up_and_a_classifier_warm_up_each_run_their_kind(
    classifier_dir: Path,
) -> None:
    from lmforge.serve.models import warm_up

    with Engine(classifier_dir, EngineSettings(kv_slots=2)) as engine:
        warm_up(engine)  # a generation would be refused: the classifier has no LM head
        assert engine.snapshot().steps == 1


def test_a_language_model_classifies_zero_shot_and_needs_labels(tiny_model: Path) -> None:
    from tests.unit.inprocess import app_state, client, running_engine

    with running_engine(tiny_model) as served:
        http = client(app_state(served))
        (card,) = http.get("/v1/models").json()["data"]
        assert card["kind"] == "generator" and card["labels"] is None
        missing = http.post("/v1/classify", json={"text": "the cat"})
        assert missing.status_code == 422, missing.text
        assert "labels: required" in missing.json()["error"]["message"]
        answer = http.post("/v1/classify", json={"text": "the cat", "labels": ["cat", "dog"]})
        assert answer.status_code == 200 and set(answer.json()["results"][0]["scores"]) == {
            "cat",
            "dog",
        }
        # The schema says so too: a body it accepts is one the server accepts.
        body = http.get("/openapi.json").json()["components"]["schemas"]["ClassifyRequest"]
        assert "labels" in body["required"] and body["properties"]["labels"]["type"] == "array"


def test_a_classifier_schema_leaves_labels_optional(classifier_dir: Path) -> None:
    from tests.unit.inprocess import app_state, client, running_engine

    with running_engine(classifier_dir) as served:
        http = client(app_state(served))
        body = http.get("/openapi.json").json()["components"]["schemas"]["ClassifyRequest"]
        assert "labels" not in body["required"]
        answer = http.post("/v1/classify", json={"text": "the cat"})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("id2label", "why"),
    [({"0": "a", "2": "b"}, "numbering"), ({"0": "a", "1": "a", "2": "b"}, "twice")],
)
def test_a_classifier_with_bad_labels_is_refused(
    classifier_dir: Path, tmp_path: Path, id2label: dict[str, str], why: str
) -> None:
    from lmforge.errors import ModelError

    broken = tmp_path / "broken"
    shutil.copytree(classifier_dir, broken)
    config = json.loads((broken / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = id2label
    (broken / "config.json").write_text(json.dumps(config), encoding="utf-8")
    ModelCard().write(broken)
    with pytest.raises(ModelError, match=why):
        Engine(broken)
