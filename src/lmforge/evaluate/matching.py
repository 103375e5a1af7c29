"""Matching of text pairs. A matcher (`train --task matching`) scores each pair with its head
over `prompts.pair_text(a, b)`, as serving does: P(match) of a two-label head, or the raw value
of a regression head. A language model scores the cosine similarity of pooled hidden states.
Graded pairs (STS-B) give Spearman and Pearson correlations; binary pairs (MRPC) give accuracy
and F1, a matcher's two-label head at its own decision (P(match) >= 0.5), any other score at
the threshold that is best on separate threshold data (train or dev), never on the reported
data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.evaluate import MatchingTask
from lmforge.errors import DataError
from lmforge.evaluate.data import data_entry, task_records
from lmforge.evaluate.result import Perturb, TaskResult
from lmforge.evaluate.scoring import LoadedModel, head_outputs, pooled_embeddings, softmax
from lmforge.metrics import accuracy, best_threshold, binary_f1, pearson, spearman
from lmforge.prompts import MATCH_LABEL, SCORE_LABEL, pair_text

HEAD_THRESHOLD = 0.5  # a two-label matcher's own decision: the more probable label


def matcher_scores(lm: LoadedModel, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
    """Each pair's score by a matcher's head."""
    if lm.card is None or lm.card.task != "matching":
        raise DataError(
            f"{lm.ref} is a classifier of single texts, not a matcher",
            hint="score pairs with a model from `train --task matching` or a language model",
        )
    outputs = head_outputs(lm, [pair_text(a, b) for a, b in pairs], batch_size)
    if lm.labels == [SCORE_LABEL]:
        return outputs[:, 0]
    scores: np.ndarray = softmax(outputs)[:, lm.labels.index(MATCH_LABEL)]
    return scores


def _scores(
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
    if lm.kind != "lm":
        return matcher_scores(lm, list(zip(texts_a, texts_b, strict=True)), batch_size), np.array(
            gold
        )
    a = pooled_embeddings(lm, texts_a, spec.pooling, batch_size)
    b = pooled_embeddings(lm, texts_b, spec.pooling, batch_size)
    return np.sum(a * b, axis=1), np.array(gold)


def run_matching(
    lm: LoadedModel, spec: MatchingTask, batch_size: int, perturb: Perturb | None = None
) -> TaskResult:
    scores, gold = _scores(lm, spec, spec.data, spec.limit, batch_size, perturb)
    method = "cosine of pooled states" if lm.kind == "lm" else "matcher head"
    settings: dict[str, Any] = {"method": method, "pooling": spec.pooling}
    details: dict[str, Any] = {"data": data_entry(spec.data), "settings": settings}
    if spec.target == "score":
        metrics = {"spearman": spearman(scores, gold), "pearson": pearson(scores, gold)}
    else:
        if not set(np.unique(gold)) <= {0.0, 1.0}:
            raise DataError(f"{spec.data}: a binary label must be 0 or 1")
        if lm.kind != "lm" and lm.labels != [SCORE_LABEL]:
            threshold = HEAD_THRESHOLD
        else:
            # The threshold is chosen on clean threshold data: robustness perturbs only what is
            # reported.
            tuning, tuning_gold = _scores(
                lm, spec, spec.threshold_data, spec.threshold_limit, batch_size, None
            )
            threshold = best_threshold(tuning, tuning_gold)
            details["threshold_data"] = data_entry(str(Path(spec.threshold_data)))
        decided = scores >= threshold
        metrics = {"accuracy": accuracy(decided, gold.astype(bool)), "f1": binary_f1(decided, gold)}
        metrics["threshold"] = threshold
    metrics["examples"] = float(len(gold))
    return TaskResult(metrics, details)
