"""Metric functions on plain arrays and strings (no model): classification, matching and text
overlap. ROUGE and BLEU are reported on a 0–100 scale, as papers and leaderboards do."""

from __future__ import annotations

import numpy as np


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predictions)), 1)
    return counts


def macro_f1(predictions: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Unweighted mean of per-class F1 (a class never predicted nor present scores 0)."""
    counts = confusion_matrix(predictions, labels, classes)
    tp = np.diag(counts).astype(float)
    fp = counts.sum(axis=0) - tp
    fn = counts.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    scores = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(scores.mean())


def binary_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class (1)."""
    predictions, labels = np.asarray(predictions, bool), np.asarray(labels, bool)
    tp = np.sum(predictions & labels)
    denominator = 2 * tp + np.sum(predictions & ~labels) + np.sum(~predictions & labels)
    return float(2 * tp / denominator) if denominator else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties get average ranks)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(x, float), np.asarray(y, float))[0, 1])


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The decision threshold (score >= t means positive) with the highest accuracy on these
    scores; candidates are midpoints between consecutive distinct scores."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    distinct = np.unique(scores)
    candidates = np.concatenate(
        [[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]]
    )
    hits = [np.mean((scores >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(hits))])


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure ×100 (`rouge-score`, Porter stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    return {name: 100 * total / len(predictions) for name, total in totals.items()}


def bleu(predictions: list[str], references: list[str]) -> tuple[float, str]:
    """Corpus BLEU (`sacrebleu`, default 13a tokenization) and its signature."""
    import sacrebleu

    metric = sacrebleu.BLEU()
    score = metric.corpus_score(predictions, [references])
    return float(score.score), str(metric.get_signature())
