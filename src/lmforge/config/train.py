"""Options of `train`, `distill` and `tune`. The optimisation options are shared (one dataclass
that the three verbs extend), so a train config found by `tune` runs unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lmforge.config import option
from lmforge.records import FORMATS

STUDY_NAME = re.compile(r"[A-Za-z0-9._-]+")

PRESETS = ("tiny", "small", "medium", "distilgpt2", "gpt2")
# `--unverified`, on every verb that loads a model the user names.
UNVERIFIED_HELP = (
    "Load a model dir that has no lmforge.json (a plain Hugging Face save you made yourself) "
    "without verifying its files."
)


@dataclass
class OptimOptions:
    """How to optimise: shared by train, distill and tune."""

    data: str = option(
        "",
        "Dataset dir from `data prepare` (task fine-tuning: a .tsv/.csv/.jsonl file).",
    )
    output: str = option("", "Model dir to write (checkpoints go to OUTPUT.checkpoints/).")
    force: bool = option(False, "Replace an existing model dir at --output.")
    resume: bool = option(False, "Continue from the newest complete checkpoint of this run.")
    context_length: int = option(
        0, "Tokens per training window (0 = the model's, or 128 new).", ge=0
    )
    batch_size: int = option(
        32, "Global batch: sequences per optimizer step, over all processes.", ge=1
    )
    grad_accum: int = option(
        1, "Gradient accumulation steps (the batch is split across them).", ge=1
    )
    learning_rate: float = option(2e-3, "Peak learning rate (AdamW).", gt=0)
    lr_schedule: str = option(
        "cosine", "Decay after warmup.", choices=("cosine", "linear", "constant")
    )
    warmup_ratio: float = option(0.05, "Fraction of the steps spent warming up.", ge=0, lt=1)
    schedule_by: str = option(
        "steps",
        "What the decay runs over: --max-steps, or time: it ends at --max-time or --max-steps, "
        "whichever comes first, so a slow or busy machine still ends the run at a low rate.",
        choices=("steps", "time"),
    )
    weight_decay: float = option(0.1, "AdamW weight decay (not on biases and norms).", ge=0)
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).", ge=0)
    max_steps: int = option(0, "Optimizer steps to run (0 = use --epochs).", ge=0)
    epochs: float = option(1.0, "Passes over the training tokens (when --max-steps is 0).")
    max_time: float = option(
        0.0, "Stop (and keep the best model) after this many minutes; 0 = none.", ge=0
    )
    windows: str = option(
        "random",
        "Training windows: random offsets each epoch, or sequential blocks.",
        choices=("random", "sequential"),
    )
    eval_steps: int = option(200, "Evaluate on valid (and a train sample) every N steps.", ge=1)
    early_stopping: int = option(
        0, "Stop after N evaluations without a better validation loss (0 = off).", ge=0
    )
    save_total_limit: int = option(2, "Checkpoints to keep besides the best one.", ge=0)
    keep_checkpoints: bool = option(False, "Keep OUTPUT.checkpoints/ after a successful run.")
    seed: int = option(1234, "Seed for initialisation, data order and dropout.")
    device: str = option("auto", "Where to train.", choices=("auto", "cpu", "cuda"))
    precision: str = option(
        "auto",
        "Numeric precision: fp32; bf16 mixed precision (autocast) on CUDA or on CPUs with "
        "bf16 instructions; fp16 on CUDA (auto: bf16 on a CUDA device that supports it).",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    threads: int = option(0, "CPU threads for torch (0 = the CPUs this process may use).", ge=0)
    track: bool = option(True, "Log the run to MLflow ($MLFLOW_TRACKING_URI or $LMFORGE_HOME).")
    experiment: str = option("lmforge", "MLflow experiment name.")
    run_name: str = option("", "MLflow run name (default: the output dir's name).")

    def optim_problems(self) -> list[str]:
        out: list[str] = []
        if not self.data:
            out.append("data: --data is required")
        if not self.output:
            out.append("output: --output MODEL_DIR is required")
        # A grad_accum below 1 is reported by its bound; only a positive one can divide.
        if self.grad_accum >= 1 and self.batch_size % self.grad_accum:
            out.append(
                f"grad_accum: {self.grad_accum} does not divide batch_size {self.batch_size}"
            )
        if self.schedule_by == "time" and not self.max_time > 0:
            out.append("schedule_by: time needs --max-time")
        if self.max_steps == 0 and not self.epochs > 0:
            out.append(f"epochs: {self.epochs} must be positive when --max-steps is 0")
        return out


@dataclass
class TrainConfig(OptimOptions):
    """Options of `lmforge train`."""

    task: str = option(
        "lm",
        "lm: language modelling on a dataset dir; classification, matching (text pairs) or "
        "summarization: fine-tune --init on a labelled file.",
        choices=("lm", "classification", "matching", "summarization"),
    )
    init: str = option(
        "",
        "Fine-tune this model: a model dir, a registry reference (models:/NAME@ALIAS), or "
        "hf:NAME for a Hugging Face hub model (downloaded).",
    )
    unverified: bool = option(False, UNVERIFIED_HELP)
    model_size: str = option(
        "small",
        "Preset for a new model: tiny (2x64), small (4x256), medium (6x384), distilgpt2 "
        "(6x768), gpt2 (12x768).",
        choices=PRESETS,
    )
    n_layer: int = option(0, "Transformer blocks (0 = the preset's).", ge=0)
    n_embd: int = option(0, "Hidden size (0 = the preset's).", ge=0)
    n_head: int = option(0, "Attention heads (0 = the preset's).", ge=0)
    dropout: float = option(
        0.1, "Dropout on embeddings, attention and residuals (new models).", ge=0, lt=1
    )
    valid_data: str = option("", "Task fine-tuning: validation file (default: 5% of --data).")
    data_format: str = option(
        "",
        "Task files: jsonl, tsv or csv (default: from the file name; STS-B's .csv files are "
        "tab-separated: --data-format tsv).",
    )
    header: bool = option(
        True,
        "Task .tsv/.csv files: the first row names the columns (--no-header: columns are "
        "numbers from 0, e.g. --text-column 5).",
    )
    text_column: str = option("text", "Classification and matching: the (first) text column.")
    text_b_column: str = option("text_b", "Matching: the second text's column or field.")
    label_column: str = option(
        "label", "Classification: the label column; matching: the 0/1 label or graded score."
    )
    target: str = option(
        "auto",
        "Matching: label (0/1, a two-label classifier; 1 = match), score (graded, e.g. STS-B's "
        "0-5: a one-output regression head) or auto (label when every value is 0 or 1).",
        choices=("auto", "label", "score"),
    )
    document_field: str = option("document", "Summarization: the document field.")
    summary_field: str = option("summary", "Summarization: the summary field.")

    def problems(self) -> list[str]:
        out = self.optim_problems()
        if self.n_embd and self.n_head and self.n_embd % self.n_head:
            out.append(f"n_head: {self.n_head} does not divide n_embd {self.n_embd}")
        if self.task != "lm" and not self.init:
            out.append(f"init: --task {self.task} fine-tunes a model; pass --init MODEL")
        if self.data_format not in ("", *FORMATS):
            out.append(f"data_format: {self.data_format!r} is not one of {', '.join(FORMATS)}")
        return out


@dataclass
class DistillConfig(OptimOptions):
    """Options of `lmforge distill`."""

    teacher: str = option(
        "", "The model to distil: a model dir, models:/NAME@ALIAS, or hf:NAME (downloaded)."
    )
    unverified: bool = option(False, UNVERIFIED_HELP)
    student_layers: int = option(
        0,
        "Student blocks, copied from evenly spaced teacher blocks (0 = half the teacher's).",
        ge=0,
    )
    student_config: str = option(
        "", "A config.json for a freshly initialised student instead of copied layers."
    )
    temperature: float = option(2.0, "Softmax temperature T of the distillation loss.", gt=0)
    alpha_ce: float = option(0.5, "Weight of T² · KL(teacher_T ‖ student_T).", ge=0)
    alpha_clm: float = option(0.5, "Weight of the language-modelling cross-entropy.", ge=0)
    alpha_cos: float = option(
        -1.0, "Weight of the hidden-state cosine loss (-1: 1.0 when hidden sizes match, else 0)."
    )

    def problems(self) -> list[str]:
        out = self.optim_problems()
        if not self.teacher:
            out.append("teacher: --teacher MODEL is required")
        if self.student_layers and self.student_config:
            out.append("student_config: give either --student-layers or --student-config")
        if self.alpha_cos < 0 and self.alpha_cos != -1.0:
            out.append(f"alpha_cos: {self.alpha_cos} must be -1 (auto) or non-negative")
        return out


@dataclass
class TuneConfig(TrainConfig):
    """Options of `lmforge tune`: the search, plus every train option as the fixed base."""

    space: str = option("", "YAML search space: train option → {low, high[, log]} or [choices].")
    trials: int = option(8, "Trials to run (grid: at most the grid's size).", ge=1)
    sampler: str = option("tpe", "Search strategy.", choices=("grid", "random", "tpe", "gp"))
    prune: bool = option(True, "Stop poor trials early on intermediate validation loss.")
    timeout: float = option(0.0, "Stop starting trials after this many minutes (0 = none).", ge=0)
    storage: str = option(
        "", "Optuna storage URL (default: sqlite:///OUTPUT/study.db); shareable by processes."
    )
    study_name: str = option("", "Study name (default: the output dir's name).")

    def problems(self) -> list[str]:
        out = [p for p in super().problems() if not p.startswith("output:")]
        if not self.output:
            out.append("output: --output DIR (for the study, plots and best config) is required")
        if not self.space:
            out.append("space: --space SPACE.yaml is required")
        # The study's tracking run is found by its name in an MLflow filter string.
        study = self.study_name or Path(self.output).name
        if self.track and study and not STUDY_NAME.fullmatch(study):
            out.append(
                f"study_name: {study!r} may hold only letters, digits, '.', '_' and '-' "
                "(set --study-name when the output dir's name has other characters)"
            )
        return out
