"""The scikit-learn baselines of `make bench-tasks`, on the files the task pipelines' data step
writes (lmforge.pipeline.taskdata), so ours and the baseline see the same rows:

- classification (SST-2, AG News): TF-IDF of word 1-2-grams + logistic regression;
- matching (MRPC, STS-B): cosine of TF-IDF vectors fitted on the train texts; MRPC decides
  "paraphrase" above the threshold with the best F1 on train;
- summarization (XSum): Lead-1, the document's first sentence, ROUGE-L against the reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lmforge.metrics import accuracy, binary_f1, macro_f1, rouge, spearman
from lmforge.records import read_records

Metrics = dict[str, float]


def _table(path: Path, *fields: str) -> list[list[str]]:
    records = read_records(path, fields)
    return [[r[f] for f in fields] for r in records]


def tfidf_logreg(train: Path, devs: dict[str, Path], seed: int = 1234) -> dict[str, Metrics]:
    """Accuracy and macro-F1 on each dev file of a TF-IDF (1-2-gram) + LR fitted on train."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = _table(train, "text", "label")
    labels = sorted({label for _, label in rows})
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform([text for text, _ in rows])
    gold_train = np.array([labels.index(label) for _, label in rows])
    model = LogisticRegression(max_iter=2000, C=4.0, random_state=seed).fit(features, gold_train)
    results = {}
    for name, path in devs.items():
        dev = _table(path, "text", "label")
        guessed = model.predict(vectorizer.transform([text for text, _ in dev]))
        gold = np.array([labels.index(label) for _, label in dev])
        results[name] = {
            "accuracy": accuracy(guessed, gold),
            "macro_f1": macro_f1(guessed, gold, len(labels)),
            "examples": float(len(dev)),
        }
    return results


def _cosines(vectorizer: object, pairs: list[list[str]]) -> np.ndarray:
    a = vectorizer.transform([p[0] for p in pairs])  # type: ignore[attr-defined]
    b = vectorizer.transform([p[1] for p in pairs])  # type: ignore[attr-defined]
    # TF-IDF rows are L2-normalised: the row-wise dot product is the cosine.
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (score >= t is a match) with the highest F1 on these scores."""
    distinct = np.unique(scores)
    candidates = np.concatenate([(distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]])
    f1s = [binary_f1(scores >= t, labels) for t in candidates]
    return float(candidates[int(np.argmax(f1s))])


def tfidf_cosine(train: Path, dev: Path, target: str) -> Metrics:
    """MRPC (target label): F1 and accuracy at the train-chosen threshold; STS-B (target
    score): Spearman of the cosine against the graded score."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_pairs = _table(train, "text", "text_b", "label")
    dev_pairs = _table(dev, "text", "text_b", "label")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    vectorizer.fit([p[0] for p in train_pairs] + [p[1] for p in train_pairs])
    dev_scores = _cosines(vectorizer, dev_pairs)
    gold = np.array([float(p[2]) for p in dev_pairs])
    if target == "score":
        return {"spearman": spearman(dev_scores, gold), "examples": float(len(dev_pairs))}
    train_gold = np.array([p[2] == "1" for p in train_pairs])
    threshold = best_f1_threshold(_cosines(vectorizer, train_pairs), train_gold)
    guessed = dev_scores >= threshold
    return {
        "f1": binary_f1(guessed, gold == 1),
        "accuracy": accuracy(guessed, gold == 1),
        "threshold": threshold,
        "examples": float(len(dev_pairs)),
    }


def lead_1(document: str) -> str:
    """The document's first sentence (XSum documents hold one sentence or paragraph a line)."""
    first = next((line.strip() for line in document.splitlines() if line.strip()), "")
    match = re.match(r"(.+?[.!?])(\s|$)", first)
    return match.group(1) if match else first


def lead_1_rouge(dev: Path) -> Metrics:
    rows = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line]
    scores = rouge([lead_1(r["document"]) for r in rows], [r["summary"] for r in rows])
    return {"rougeL": scores["rougeL"], "rouge1": scores["rouge1"], "examples": float(len(rows))}
