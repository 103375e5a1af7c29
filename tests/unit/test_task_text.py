"""One normalisation of task text (`prompts.task_text`) and one pair format, read alike by
training, evaluation and serving: a text with stray spaces reaches the head as the same token
ids on all three paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.cards import ModelCard
from lmforge.config.evaluate import ClassificationTask
from lmforge.config.train import TrainConfig
from lmforge.evaluate.classification import run_classification
from lmforge.evaluate.scoring import load_for_eval
from lmforge.prompts import SUMMARY_CUE, pair_text, summary_pieces, task_text
from lmforge.train.heads import head_spec
from tests.unit.inprocess import app_state, client, running_engine

# SST-2's own format: every row ends in a space; and a run of spaces inside.
RAW = "the cat  sat on the mat . "


def test_task_text_strips_and_collapses_whitespace_and_keeps_case() -> None:
    assert task_text("  A  gorgeous\t,\nwitty Movie . ") == "A gorgeous , witty Movie ."
    assert pair_text(" a  b ", "C\n d\t") == "a b\nC d"
    assert summary_pieces("  the document \n") == ("", "the document", SUMMARY_CUE)


def head_config(task: str, data: Path, output: Path, init: Path) -> TrainConfig:
    return TrainConfig(
        task=task,
        init=str(init),
        data=str(data),
        valid_data=str(data),
        output=str(output),
        text_column="text",
        text_b_column="text_b",
        track=False,
    )


def test_training_evaluation_and_serving_read_the_same_ids(
    tiny_model: Path, tmp_path: Path
) -> None:
    data = tmp_path / "rows.tsv"
    data.write_text(f"text\ttext_b\tlabel\n{RAW}\t{RAW}\t1\nhello world\thello\t0\n", "utf-8")
    spec = head_config("classification", data, tmp_path / "unused", tiny_model)
    trained = head_spec(spec)
    train_ids = trained.train_dataset.items[0]["input_ids"]
    tokenizer = trained.tokenizer
    assert train_ids == tokenizer(task_text(RAW), add_special_tokens=False)["input_ids"]
    assert train_ids != tokenizer(RAW, add_special_tokens=False)["input_ids"]
    pairs = head_spec(head_config("matching", data, tmp_path / "unused", tiny_model))
    pair_ids = tokenizer(pair_text(RAW, RAW), add_special_tokens=False)["input_ids"]
    assert pairs.train_dataset.items[0]["input_ids"] == pair_ids

    # The classifier as `train` saves it, with a head far from zero so that different ids
    # give clearly different probabilities.
    model_dir = tmp_path / "classifier"
    model = trained.model.eval()
    with torch.no_grad():
        # Seeded, and not so far from zero that the softmax saturates: at std 2 a draw now and
        # then gave [1, 0] for both id sequences although the model reads them differently.
        model.score.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(model_dir)
    shutil.copy(tiny_model / "tokenizer.json", model_dir / "tokenizer.json")
    ModelCard(task="classification", labels=["0", "1"]).write(model_dir)

    # Evaluation: the ids the model is called with.
    lm = load_for_eval(str(model_dir))
    seen: list[list[int]] = []

    def record(_module: object, _args: object, kwargs: dict) -> None:
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen.extend(row[: int(m.sum())].tolist() for row, m in zip(ids, mask, strict=True))

    lm.model.register_forward_pre_hook(record, with_kwargs=True)
    task = ClassificationTask(data=str(data), labels={"0": "0", "1": "1"})
    run_classification(lm, task, batch_size=8)
    assert seen[0] == train_ids

    # Serving: the head's probabilities are transformers' over the training ids, not over
    # the raw text's.
    def probabilities(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].softmax(-1).numpy()

    raw_ids = tokenizer(RAW, add_special_tokens=False)["input_ids"]
    assert not np.allclose(probabilities(train_ids), probabilities(raw_ids), atol=1e-3)
    with running_engine(model_dir) as served:
        answer = client(app_state(served)).post("/v1/classify", json={"text": RAW})
    assert answer.status_code == 200, answer.text
    scores = answer.json()["results"][0]["scores"]
    expected = probabilities(train_ids)
    assert [scores["0"], scores["1"]] == pytest.approx(expected.tolist(), abs=1e-4)
