"""Matching: cosine similarity of pooled hidden states of text pairs. Graded pairs (STS-B)
give Spearman and Pearson correlations; binary pairs (MRPC) give accuracy and F1 at the
threshold that is best on separate threshold data (train or dev), never on the reported data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lmforge.config.evaluate import MatchingTask
from lmforge.errors import DataError
from lmforge.evaluate.data import data_entry, task_records
from lmforge.evaluate.result import Perturb, TaskResult
from lmforge.evaluate.scoring import LoadedModel, pooled_embeddings
from lmforge.metrics import accuracy, best_threshold, binary_f1, pearson, spearman


def _similarities(
    lm: LoadedModel,
    spec: MatchingTask,
    path: str,
    limit: int,
    batch_size: int,
    perturb: Perturb | None,
) -> tuple[np.ndarray, np.ndarray]:
    task = replace(spec, data=path, limit=limit)
    records = task_records(task, ("text_a", "text_b", spec.target))
    column = spec.column(spec.target)
    gold = []
    for record in records:
        try:
            gold.append(float(record[column]))
        except ValueError:
            raise DataError(
                f"{path}:{record.line}: {spec.target} {record[column]!r} is not a number"
            ) from None
    texts_a = [r[spec.column("text_a")] for r in records]
    texts_b = [r[spec.column("text_b")] for r in records]
    if perturb is not None:
        texts_a, texts_b = [perturb(t) for t in texts_a], [perturb(t) for t in texts_b]
    a = pooled_embeddings(lm, texts_a, spec.pooling, batch_size)
    b = pooled_embeddings(lm, texts_b, spec.pooling, batch_size)
    return np.sum(a * b, axis=1), np.array(gold)


def run_matching(
    lm: LoadedModel, spec: MatchingTask, batch_size: int, perturb: Perturb | None = None
) -> TaskResult:
    cosines, gold = _similarities(lm, spec, spec.data, spec.limit, batch_size, perturb)
    details = {"data": data_entry(spec.data), "settings": {"pooling": spec.pooling}}
    if spec.target == "score":
        metrics = {"spearman": spearman(cosines, gold), "pearson": pearson(cosines, gold)}
    else:
        if not set(np.unique(gold)) <= {0.0, 1.0}:
            raise DataError(f"{spec.data}: a binary label must be 0 or 1")
        # The threshold is chosen on clean threshold data: robustness perturbs only what is
        # reported.
        tuning, tuning_gold = _similarities(
            lm, spec, spec.threshold_data, spec.threshold_limit, batch_size, None
        )
        threshold = best_threshold(tuning, tuning_gold)
        decided = cosines >= threshold
        metrics = {"accuracy": accuracy(decided, gold.astype(bool)), "f1": binary_f1(decided, gold)}
        metrics["threshold"] = threshold
        details["threshold_data"] = data_entry(str(Path(spec.threshold_data)))
    metrics["examples"] = float(len(gold))
    return TaskResult(metrics, details)
