"""Suite files, task data records, perturbations and the model-scoring helpers of `eval`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.errors import ConfigError, DataError
from lmforge.evaluate.robustness import KINDS, perturbation
from lmforge.evaluate.scoring import LoadedModel, continuation_logprobs, greedy_tokens
from lmforge.evaluate.suite import load_suite
from lmforge.gate import Gate, natural_direction
from lmforge.prompts import CLASSIFY_TEMPLATE
from lmforge.records import read_records
from tests.conftest import build_model_dir


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_suite_parses_tasks_and_gate(tmp_path: Path) -> None:
    suite = load_suite(
        _suite(
            tmp_path,
            """
tasks:
  - {name: sst2, type: classification, data: a.tsv, labels: {"0": bad, "1": good}}
  - {type: robustness, of: sst2, perturbations: [typos, case]}
gate:
  sst2.accuracy: {max_regression: 0.01}
  "*.typos_*": {better: higher, max_regression: 0.5}
""",
        )
    )
    assert [t.name for t in suite.tasks] == ["sst2", "robustness"]
    assert suite.tasks[0].options.template == CLASSIFY_TEMPLATE
    gate = Gate(suite.gate, default_regression=0.02)
    assert gate.rule("sst2.accuracy").max_regression == 0.01
    assert gate.rule("robustness.typos_accuracy_ratio").max_regression == 0.5
    default = gate.rule("other.word_perplexity")
    assert (default.better, default.max_regression) == ("lower", 0.02)
    assert gate.rule("other.tokens_per_second") is None
    assert [natural_direction(m) for m in ("rougeL", "bleu", "exposure_mean", "examples")] == [
        "higher",
        "higher",
        "lower",
        None,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: [{type: vibes}]", "unknown task type 'vibes'"),
        (
            "tasks: [{type: classification, data: a.tsv, labels: {a: x, b: y}, colour: 1}]",
            "unknown key 'colour'",
        ),
        ("tasks: [{type: classification, data: a.tsv, labels: {a: x}}]", "at least two"),
        ("tasks: [{type: matching, target: label, data: d.tsv}]", "never on the data"),
        ("tasks: [{type: robustness, of: nothing}]", "perturbs 'nothing'"),
        (
            "tasks: [{type: perplexity, data: a.txt}, {type: perplexity, data: b.txt}]",
            "task names repeat: perplexity",
        ),
        ("tasks: [{type: robustness, of: x, perturbations: [glitter]}]", "unknown glitter"),
        ("tasks: []", "non-empty list"),
    ],
)
def test_bad_suites_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_suite(_suite(tmp_path, text))


def test_records_headerless_tsv_quotes_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text('g\t"half quote\t4.5\tA man.\tA "man".\textra\n\ng\tx\t1.0\tB\tC\n')
    records = read_records(path, ["2", "3", "4"], header=False)
    assert [r.line for r in records] == [1, 3]
    assert records[0]["4"] == 'A "man".' and records[1]["2"] == "1.0"
    assert len(read_records(path, ["2"], header=False, limit=1)) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"document": "d", "summary": "s"}\n{"document": "d"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: the row lacks summary"):
        read_records(bad, ["document", "summary"])
    unknown = path.with_suffix(".xml")
    unknown.write_text("<a/>")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_records(unknown, ["a"])


def test_perturbations_are_seeded_and_touch_words() -> None:
    text = "The quick brown fox, which was fast, jumps over the lazy dog."
    for kind in KINDS:
        noisy = perturbation(kind, 0.5, seed=1)(text)
        assert noisy != text, kind
        assert noisy == perturbation(kind, 0.5, seed=1)(text), kind
        assert perturbation(kind, 0.5, seed=2)(text) != noisy or kind == "case", kind
    assert perturbation("case", 1.0, 0)("abc def").lower() == "abc def"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    from lmforge.evaluate.scoring import load_for_eval

    return load_for_eval(str(build_model_dir(tmp_path_factory.mktemp("m") / "model")))


def test_continuation_logprobs_match_a_full_forward(lm: LoadedModel) -> None:
    context, continuation = lm.encode("the cat sat"), lm.encode(" on the mat")
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(ids).logits[0], dim=-1)
    expected = sum(
        float(logprobs[len(context) + i - 1, token]) for i, token in enumerate(continuation)
    )
    # Batched with a longer neighbour (padding) and alone: the same number.
    pairs = [(context, continuation), (lm.encode("hello world " * 5), continuation)]
    assert continuation_logprobs(lm, pairs, batch_size=2)[0] == pytest.approx(expected, abs=1e-4)
    assert continuation_logprobs(lm, pairs[:1])[0] == pytest.approx(expected, abs=1e-4)


def test_greedy_tokens_match_generate(lm: LoadedModel) -> None:
    prompt = torch.tensor([lm.encode("the cat sat on the")])
    ours = greedy_tokens(lm, prompt, 8)
    theirs = lm.model.generate(prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    assert np.array_equal(ours[0].numpy(), theirs[0, prompt.shape[1] :].numpy())


def test_a_dataset_dir_given_as_task_data_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="is a dataset dir; a task takes a labelled file"):
        read_records(tmp_path, ["text", "label"])
    with pytest.raises(DataError, match="does not exist"):
        read_records(tmp_path / "typo.tsv", ["text", "label"])
