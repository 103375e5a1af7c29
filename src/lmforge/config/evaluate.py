"""Options of `lmforge eval` and the tasks of an evaluation suite (YAML, see
configs/eval-*.yaml and docs/evaluation.md). Each task type's options are one dataclass,
so a suite is checked like any config: unknown keys and bad values are named at once."""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import option
from lmforge.config.train import UNVERIFIED_HELP
from lmforge.prompts import CLASSIFY_TEMPLATE, SUMMARY_TEMPLATE

PERTURBATIONS = ("typos", "case", "whitespace", "punctuation")


@dataclass
class EvalConfig:
    """Options of `lmforge eval`."""

    model: str = option(
        "", "Model dir, registry reference (models:/NAME@ALIAS) or hf:NAME (downloaded)."
    )
    unverified: bool = option(False, UNVERIFIED_HELP)
    suite: str = option("", "Evaluation suite YAML (tasks, data and gate thresholds).")
    perplexity: list[str] = option(
        [],
        "Shorthand: text files (one document per line), .jsonl files (a text field) or "
        "dataset dirs (their test split) to score, each a task named after the file.",
    )
    context_length: int = option(
        0, "Perplexity window in tokens (0 = the model's positions).", ge=0
    )
    stride: int = option(0, "Perplexity: tokens between window starts (0 = half the window).", ge=0)
    batch_size: int = option(8, "Sequences per forward pass.", ge=1)
    threads: int = option(
        0,
        "CPU threads for torch (0 = the CPUs this process may use, capped by its cgroup "
        "quota; OMP_NUM_THREADS when set).",
        ge=0,
    )
    report: str = option("", "Directory for report.json, report.md and the plots.")
    baseline: str = option("", "A second model to compare against (e.g. models:/NAME@production).")
    max_regression: float = option(
        0.02,
        "With --baseline: the largest relative regression that passes, for every quality "
        "metric the suite's gate does not set.",
        ge=0,
    )
    track: bool = option(
        True,
        "Record the results on the registry version (models:/...: its tags, read by the "
        "promotion gate, and its MLflow run), or on a model dir's training run.",
    )
    force: bool = option(False, "Replace an existing report dir.")

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.model:
            out.append("model: MODEL is required")
        if not self.perplexity and not self.suite:
            out.append("suite: give --suite SUITE.yaml or at least one --perplexity FILE")
        if not self.report:
            out.append("report: --report DIR is required")
        return out


@dataclass
class TaskData:
    """Where a task's examples come from: a .jsonl/.tsv/.csv file, the columns that play each
    role (`fields`, e.g. {text: sentence}; a role's default column is its own name; without
    a header, columns are numbers from 0) and how many rows to use (first N; 0 = all)."""

    data: str = option("", "The task's data file.")
    format: str = option("", "jsonl, tsv or csv (default: from the file name).")
    header: bool = option(True, "The first row of a .tsv/.csv names the columns.")
    fields: dict[str, str] = option({}, "Role → column, e.g. {text: sentence, label: label}.")
    limit: int = option(0, "Use the first N rows (0 = all).", ge=0)

    def data_problems(self, roles: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        if not self.data:
            out.append("data: the task needs a data file")
        unknown = sorted(set(self.fields) - set(roles))
        if unknown:
            out.append(f"fields: unknown role(s) {', '.join(unknown)} (roles: {', '.join(roles)})")
        return out

    def column(self, role: str) -> str:
        return self.fields.get(role, role)


@dataclass
class PerplexityTask(TaskData):
    """Sliding-window perplexity (token, word, bits per byte) of a text file (one document per
    line), a .jsonl/.tsv/.csv file (role: text) or a dataset dir (its `split`)."""

    split: str = option(
        "test", "Dataset dirs: the split to score.", choices=("train", "valid", "test")
    )
    context_length: int = option(0, "Window length in tokens (0 = the model's positions).", ge=0)
    stride: int = option(0, "Tokens between window starts (0 = half the window).", ge=0)

    def problems(self) -> list[str]:
        return self.data_problems(("text",))


@dataclass
class SummarizationTask(TaskData):
    """Summaries generated greedily after `prompt` ("TL;DR:" zero-shot, or the format of
    `train --task summarization`), scored with ROUGE-1/2/L and BLEU against the references.
    Roles: document, summary."""

    prompt: str = option(SUMMARY_TEMPLATE, "Prompt template; {document} is the input.")
    max_new_tokens: int = option(48, "Longest summary in tokens (it ends at a newline).", ge=1)
    no_repeat_ngram_size: int = option(3, "Never repeat an n-gram of this size (0 = off).")
    examples: int = option(3, "Summaries to show in the report.")

    def problems(self) -> list[str]:
        out = self.data_problems(("document", "summary"))
        if "{document}" not in self.prompt:
            out.append(f"prompt: {self.prompt!r} lacks {{document}}")
        return out


@dataclass
class ClassificationTask(TaskData):
    """Zero-shot by label scoring — log P(verbalizer | template) for each label — or, for a
    model fine-tuned with `--task classification`, its own labels. Roles: text, label."""

    labels: dict[str, str] = option(
        {},
        "Label value in the data → verbalizer words (zero-shot), or → the fine-tuned model's "
        "label name; every label in the data must be listed.",
    )
    template: str = option(CLASSIFY_TEMPLATE, "Prompt before the verbalizer; {text} is the input.")

    def problems(self) -> list[str]:
        out = self.data_problems(("text", "label"))
        if len(self.labels) < 2:
            out.append("labels: map at least two label values to their verbalizers")
        if "{text}" not in self.template:
            out.append(f"template: {self.template!r} lacks {{text}}")
        return out


@dataclass
class MatchingTask(TaskData):
    """Cosine similarity of pooled hidden states of text pairs. With a graded `score` role:
    Spearman and Pearson correlation. With a binary `label` role: accuracy and F1 at a
    threshold chosen on `threshold_data` (a train or dev file, never the test data).
    Roles: text_a, text_b, and score or label."""

    target: str = option("score", "Which role holds the gold answer.", choices=("score", "label"))
    pooling: str = option("mean", "Hidden-state pooling.", choices=("mean", "last"))
    threshold_data: str = option("", "label: the file the decision threshold is chosen on.")
    threshold_limit: int = option(0, "label: rows of threshold_data to use (0 = all).")

    def problems(self) -> list[str]:
        out = self.data_problems(("text_a", "text_b", self.target))
        if self.target == "label" and not self.threshold_data:
            out.append(
                "threshold_data: a binary matching task chooses its threshold on a train or dev "
                "file, never on the data it reports"
            )
        if self.threshold_data and self.threshold_data == self.data:
            out.append("threshold_data: must not be the evaluated data itself")
        return out


@dataclass
class RobustnessTask:
    """Another task of the suite rerun on seeded perturbations of its inputs; reports each
    metric under each perturbation and its perturbed/clean ratio."""

    of: str = option("", "The name of the task to perturb.")
    perturbations: list[str] = option(list(PERTURBATIONS), "Which perturbations to apply.")
    rate: float = option(0.1, "Fraction of words each perturbation touches.", gt=0, le=1)
    seed: int = option(0, "Seed of the perturbations.")

    def problems(self) -> list[str]:
        out = [] if self.of else ["of: name the task to perturb"]
        unknown = sorted(set(self.perturbations) - set(PERTURBATIONS))
        if unknown:
            out.append(f"perturbations: unknown {', '.join(unknown)} ({', '.join(PERTURBATIONS)})")
        return out


@dataclass
class CanaryTask:
    """Exposure (Carlini et al. 2019) of the canaries that `data prepare --canaries` put in
    a dataset's train split, against random secrets of the same shape."""

    dataset: str = option("", "Dataset dir with canaries (default: the model's training data).")
    candidates: int = option(1000, "Random secrets scored to estimate each canary's rank.", ge=50)
    seed: int = option(0, "Seed of the random secrets.")


@dataclass
class ExtractionTask:
    """Verbatim extraction: prompts with `prefix_tokens` taken from the training split and
    counts the greedy continuations that reproduce the next `match_tokens` exactly."""

    dataset: str = option("", "Dataset dir (default: the model's training data).")
    samples: int = option(100, "Prompts to try.", ge=1)
    prefix_tokens: int = option(32, "Prompt length in tokens.", ge=1)
    match_tokens: int = option(50, "Tokens a continuation must reproduce to count.", ge=1)
    seed: int = option(0, "Seed of where the prompts are taken.")


TASK_TYPES: dict[str, type] = {
    "perplexity": PerplexityTask,
    "summarization": SummarizationTask,
    "classification": ClassificationTask,
    "matching": MatchingTask,
    "robustness": RobustnessTask,
    "canary_exposure": CanaryTask,
    "extraction": ExtractionTask,
}
