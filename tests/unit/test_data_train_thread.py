from __future__ import annotations

import threading

import pytest

from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.train_thread import BackgroundTraining, train_tokenizer, training_alongside


def _config(**options: object) -> PrepareConfig:
    return build_config(PrepareConfig, {"inputs": ["x.txt"], "output": "out", **options})


def _running_trainers() -> int:
    return sum(t.name == "tokenizer-training" for t in threading.enumerate())


def test_background_training_is_the_tokenizer_of_the_same_texts(ptb_lines: list[str]) -> None:
    cfg = _config(vocab_size=500)
    training = BackgroundTraining(cfg)
    for text in ptb_lines[:3000]:
        training.add(text)
    tokenizer = training.finish()
    assert tokenizer.to_str() == train_tokenizer(cfg, ptb_lines[:3000]).to_str()
    assert training.budget == {"documents": 3000, "chars": sum(map(len, ptb_lines[:3000]))}


def test_the_budget_stops_at_the_text_that_reaches_it(ptb_lines: list[str]) -> None:
    limit = sum(map(len, ptb_lines[:10])) - 1  # the 10th text crosses it
    cfg = _config(char_level=True, tokenizer_max_chars=limit)
    training = BackgroundTraining(cfg)
    for text in ptb_lines[:50]:
        training.add(text)
    tokenizer = training.finish()
    assert training.budget["documents"] == 10
    assert tokenizer.get_vocab() == train_tokenizer(cfg, ptb_lines[:10]).get_vocab()


def test_a_failed_run_stops_the_trainer(ptb_lines: list[str]) -> None:
    before = _running_trainers()
    with pytest.raises(RuntimeError), training_alongside(_config(vocab_size=500), True) as training:
        assert training is not None
        for text in ptb_lines[:2000]:
            training.add(text)
        assert _running_trainers() == before + 1
        raise RuntimeError("cleaning failed")
    for thread in threading.enumerate():
        if thread.name == "tokenizer-training":
            thread.join(timeout=30)
    assert _running_trainers() == before
