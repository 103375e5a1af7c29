"""Evaluation metric functions against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmforge.evaluate.leakage import exposure
from lmforge.metrics import (
    accuracy,
    best_threshold,
    binary_f1,
    bleu,
    confusion_matrix,
    macro_f1,
    pearson,
    rouge,
    spearman,
)


def test_classification_metrics_by_hand() -> None:
    gold = np.array([0, 0, 1, 1, 2, 2])
    guess = np.array([0, 1, 1, 1, 0, 2])
    assert accuracy(guess, gold) == pytest.approx(4 / 6)
    assert confusion_matrix(guess, gold, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # Per class F1 = 2TP / (2TP + FP + FN): class 0 = 2/4, class 1 = 4/5, class 2 = 2/3.
    assert macro_f1(guess, gold, 3) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    # A class that never occurs and is never predicted scores 0 and pulls the mean down.
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 3) == pytest.approx(2 / 3)
    # Positive-class F1: TP 2, FP 1, FN 1.
    assert binary_f1(np.array([1, 1, 1, 0, 0]), np.array([1, 1, 0, 1, 0])) == pytest.approx(2 / 3)


def test_correlations_by_hand() -> None:
    # Ranks of x: 1, 2.5, 2.5, 4; ranks of y: 1, 2, 3, 4 → Pearson of the ranks.
    x, y = np.array([1.0, 2.0, 2.0, 5.0]), np.array([10.0, 20.0, 30.0, 40.0])
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    expected = np.sum((rx - rx.mean()) * (ry - ry.mean())) / math.sqrt(
        np.sum((rx - rx.mean()) ** 2) * np.sum((ry - ry.mean()) ** 2)
    )
    assert spearman(x, y) == pytest.approx(expected)
    assert expected == pytest.approx(0.9486833)
    assert pearson(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(1.0)


def test_best_threshold_separates_and_ignores_order() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.65, 0.5])
    labels = np.array([1, 0, 1, 0, 1, 0])
    threshold = best_threshold(scores, labels)
    assert 0.5 < threshold < 0.65
    assert accuracy(scores >= threshold, labels.astype(bool)) == 1.0


def test_rouge_and_bleu_by_hand() -> None:
    scores = rouge(["the cat sat"], ["the cat ran"])
    # Unigrams: 2 of 3 either way → F 2/3; bigrams: 1 of 2 → 1/2; LCS "the cat" → 2/3.
    assert scores["rouge1"] == pytest.approx(100 * 2 / 3)
    assert scores["rouge2"] == pytest.approx(50.0)
    assert scores["rougeL"] == pytest.approx(100 * 2 / 3)
    # Porter stemming: "cats running" matches "cat runs" fully.
    assert rouge(["cats running"], ["cat runs"])["rouge1"] == pytest.approx(100.0)
    same = "the quick brown fox jumps over the lazy dog"
    score, signature = bleu([same], [same])
    assert score == pytest.approx(100.0)
    assert "tok:13a" in signature
    assert bleu(["completely different words here"], [same])[0] < 5


def test_exposure_estimate() -> None:
    candidates = np.random.default_rng(0).normal(50.0, 5.0, size=5000)
    # At the candidates' median, half of all secrets rank better: 1 bit.
    assert exposure(50.0, candidates, 30.0) == pytest.approx(1.0, abs=0.1)
    # Three sigmas below: P ≈ 0.00135 → about 9.5 bits.
    assert exposure(35.0, candidates, 30.0) == pytest.approx(-math.log2(0.00135), abs=0.6)
    # Far below every candidate: capped at log2 |R|; far above: 0.
    assert exposure(0.0, candidates, 30.0) == 30.0
    assert exposure(100.0, candidates, 30.0) == pytest.approx(0.0, abs=1e-6)
