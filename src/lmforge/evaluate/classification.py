"""Classification: zero-shot by scoring each label's verbalizer after a prompt template, or a
fine-tuned classifier's own labels. Accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

import numpy as np

from lmforge.config.evaluate import ClassificationTask
from lmforge.errors import DataError
from lmforge.evaluate.data import data_entry, task_records
from lmforge.evaluate.result import Perturb, TaskResult
from lmforge.evaluate.scoring import (
    LoadedModel,
    continuation_logprobs,
    head_outputs,
    softmax,
)
from lmforge.metrics import accuracy, confusion_matrix, macro_f1
from lmforge.prompts import classify_prompt, label_continuation, task_text


def run_classification(
    lm: LoadedModel, spec: ClassificationTask, batch_size: int, perturb: Perturb | None = None
) -> TaskResult:
    records = task_records(spec, ("text", "label"))
    text_column, label_column = spec.column("text"), spec.column("label")
    values = list(spec.labels)
    for record in records:
        if record[label_column] not in spec.labels:
            raise DataError(
                f"{spec.data}:{record.line}: label {record[label_column]!r} is not in the "
                f"task's labels ({', '.join(values)})",
                hint="add it to `labels:` with its verbalizer",
            )
    texts = [record[text_column] for record in records]
    if perturb is not None:
        texts = [perturb(text) for text in texts]
    gold = np.array([values.index(record[label_column]) for record in records])
    if lm.kind == "classifier":
        probabilities = _fine_tuned(lm, spec, texts, batch_size)
        method = "fine-tuned classifier"
    else:
        probabilities = _label_scores(lm, spec, texts, batch_size)
        method = "zero-shot label scoring"
    guessed = probabilities.argmax(axis=1)
    metrics = {
        "accuracy": accuracy(guessed, gold),
        "macro_f1": macro_f1(guessed, gold, len(values)),
        "examples": float(len(records)),
    }
    details = {
        "data": data_entry(spec.data),
        "settings": {"method": method, "template": spec.template, "labels": spec.labels},
        "labels": values,
        "confusion_matrix": confusion_matrix(guessed, gold, len(values)).tolist(),
    }
    return TaskResult(metrics, details)


def _label_scores(
    lm: LoadedModel, spec: ClassificationTask, texts: list[str], batch_size: int
) -> np.ndarray:
    """[texts, labels] probabilities from log P(label_continuation(verbalizer) |
    classify_prompt(text)), normalised over the labels: the scoring that serving does."""
    verbalizers = [lm.encode(label_continuation(word)) for word in spec.labels.values()]
    pairs = [
        (lm.encode(classify_prompt(text, spec.template)), verbalizer)
        for text in texts
        for verbalizer in verbalizers
    ]
    scores = np.array(continuation_logprobs(lm, pairs, batch_size)).reshape(len(texts), -1)
    weights: np.ndarray = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
    return probabilities


def _fine_tuned(
    lm: LoadedModel, spec: ClassificationTask, texts: list[str], batch_size: int
) -> np.ndarray:
    """The classifier's probabilities of the texts as it was trained on them (`task_text`),
    columns reordered to the task's label order."""
    names = lm.labels
    missing = sorted(set(spec.labels.values()) - set(names))
    if missing:
        raise DataError(
            f"{lm.ref} does not know the label(s) {', '.join(missing)}",
            hint=f"map the data's labels to the model's: {', '.join(names)}",
        )
    if lm.card is not None and lm.card.task == "matching":
        raise DataError(f"{lm.ref} is a matcher (text pairs): score it with a matching task")
    probabilities = softmax(head_outputs(lm, [task_text(text) for text in texts], batch_size))
    return probabilities[:, [names.index(name) for name in spec.labels.values()]]
