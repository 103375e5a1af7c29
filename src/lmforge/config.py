"""Typed config dataclasses and YAML loading (no torch).

Every verb's options are one dataclass. A field's `help` metadata is its `--help` text and its
default is the CLI default; a YAML file (`--config`) gives values by field name and CLI
options override it. Loading reports every problem at once, naming the key and the bad value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmforge.errors import ConfigError

C = TypeVar("C")


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its `--help` text (and fixed choices, if any)."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, tp


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert a YAML or CLI value to the field type; raise ValueError naming key and value."""
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key}: a value is required, got null")
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        items = value
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif not isinstance(value, list | tuple):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return [coerce(f"{key}[{i}]", item, item_tp) for i, item in enumerate(items)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, dict | list):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value, got a list")
    return data


def build_config(cls: type[C], values: dict[str, Any], origin: str = "config") -> C:
    """Build and validate `cls` from raw values; every problem is reported in one ConfigError."""
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            problems.append(f"unknown key {key!r} (known keys: {', '.join(sorted(fields))})")
            continue
        try:
            kwargs[name] = coerce(name, value, hints[name])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            problems.append(f"{name}: {kwargs[name]!r} is not one of {', '.join(choices)}")
    if not problems:
        config = cls(**kwargs)
        validate = getattr(config, "problems", None)
        problems.extend(validate() if validate else [])
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"{origin}: {count}: " + "; ".join(problems))
    return config


def load_config(cls: type[C], path: Path | None, overrides: dict[str, Any]) -> C:
    """YAML file values (if any) overridden by CLI values, then validated."""
    values = read_yaml(path) if path else {}
    values.update(overrides)
    origin = f"config {path} + command line" if path else "options"
    return build_config(cls, values, origin)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _fraction(name: str, value: float, *, open_low: bool = False) -> list[str]:
    ok = (0.0 < value <= 1.0) if open_low else (0.0 <= value <= 1.0)
    interval = "(0, 1]" if open_low else "[0, 1]"
    return [] if ok else [f"{name}: {value} is outside {interval}"]


@dataclass
class PrepareConfig:
    """Options of `lmforge data prepare`."""

    inputs: list[str] = option(
        [],
        "Sources: files, directories or globs (.txt .jsonl .json .csv .tsv .parquet, optionally "
        ".gz), hf:NAME[/CONFIG][:SPLIT], or builtin:python-docs.",
    )
    valid_inputs: list[str] = option(
        [],
        "Sources whose documents all go to the valid split; with this or --test-inputs, "
        "INPUTS all go to train instead of splitting by hash (e.g. PTB's own splits).",
    )
    test_inputs: list[str] = option([], "Sources whose documents all go to the test split.")
    output: str = option("", "Dataset dir to create.")
    force: bool = option(False, "Replace an existing dataset at --output.")
    txt_mode: str = option(
        "line",
        "How .txt files split into documents: one per line, or one per blank-line block.",
        choices=("line", "paragraph"),
    )
    text_field: str = option("text", "Field holding the text in .jsonl/.json/hf: records.")
    text_column: str = option("text", "Column holding the text in .csv/.tsv/.parquet files.")
    strict: bool = option(False, "Fail on the first malformed record instead of skipping it.")
    strip_markup: bool = option(
        False, "Strip HTML tags/entities and wiki headings/templates while normalizing."
    )
    min_chars: int = option(16, "Drop documents shorter than this many characters.")
    max_chars: int = option(1_000_000, "Drop documents longer than this many characters.")
    min_alpha_fraction: float = option(
        0.4, "Drop documents whose non-space characters are less than this fraction letters."
    )
    max_repeated_line_fraction: float = option(
        0.3, "Drop documents where more than this fraction of lines repeat an earlier line."
    )
    dedup: str = option(
        "exact+near",
        "Deduplication: none, exact (content hash), or exact+near (MinHash LSH).",
        choices=("none", "exact", "exact+near"),
    )
    near_dup_threshold: float = option(
        0.8, "Estimated Jaccard similarity of word shingles at which a document is a near-copy."
    )
    shingle_words: int = option(5, "Words per shingle for near-duplicate detection.")
    minhash_perm: int = option(128, "MinHash permutations (more: more accurate, slower).")
    pii: bool = option(
        True, "Redact e-mails, phones, IPs, card numbers, IBANs and secrets to typed placeholders."
    )
    sample: str = option(
        "random",
        "Sampling: 'random' keeps --sample-fraction of documents chosen by hash; "
        "'representative:K' clusters into K groups and keeps those nearest each centroid.",
    )
    sample_fraction: float = option(1.0, "Fraction of documents to keep when sampling.")
    split: list[float] = option([0.98, 0.01, 0.01], "Train,valid,test fractions (sum to 1).")
    tokenizer: str = option(
        "", "Reuse this tokenizer (a tokenizer.json or a dir holding one) instead of training."
    )
    char_level: bool = option(False, "Train a character-level vocabulary instead of BPE.")
    vocab_size: int = option(8192, "BPE vocabulary size, including <|endoftext|>.")
    min_frequency: int = option(2, "BPE: minimum count for a merge.")
    tokenizer_max_chars: int = option(
        500_000_000, "Train the tokenizer on at most this many characters of the train split."
    )
    seed: int = option(1234, "Seed for hashing, sampling and MinHash permutations.")
    workers: int = option(0, "Threads for tokenizer training and encoding (0 = all cores).")
    shard: str = option(
        "",
        "I/N: prepare only the I-th of N slices of the documents (needs --tokenizer); "
        "combine the N outputs with `lmforge data merge`.",
    )

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.inputs:
            out.append("inputs: give at least one INPUT (a file, dir, glob, hf: or builtin:)")
        if not self.output:
            out.append("output: --output DIR is required")
        if self.min_chars < 0:
            out.append(f"min_chars: {self.min_chars} is negative")
        if self.max_chars < max(self.min_chars, 1):
            out.append(f"max_chars: {self.max_chars} is below min_chars {self.min_chars}")
        out += _fraction("min_alpha_fraction", self.min_alpha_fraction)
        out += _fraction("max_repeated_line_fraction", self.max_repeated_line_fraction)
        out += _fraction("near_dup_threshold", self.near_dup_threshold, open_low=True)
        out += _fraction("sample_fraction", self.sample_fraction, open_low=True)
        if self.shingle_words < 1:
            out.append(f"shingle_words: {self.shingle_words} must be at least 1")
        if self.minhash_perm < 16:
            out.append(f"minhash_perm: {self.minhash_perm} must be at least 16")
        if len(self.split) != 3 or any(x < 0 for x in self.split):
            out.append(f"split: {self.split} must be three non-negative fractions train,valid,test")
        elif abs(sum(self.split) - 1.0) > 1e-6:
            out.append(f"split: {self.split} sums to {sum(self.split):g}, not 1")
        elif self.split[0] == 0:
            out.append("split: the train fraction must be above 0")
        elif self.fixed_splits and self.split != [0.98, 0.01, 0.01]:
            out.append("split: cannot be combined with --valid-inputs/--test-inputs")
        if self.sample != "random":
            _, _, k = self.sample.partition(":")
            if not self.sample.startswith("representative:") or not k.isdigit() or int(k) < 1:
                out.append(f"sample: {self.sample!r} is not 'random' or 'representative:K'")
            elif self.sample_fraction >= 1.0:
                out.append("sample: representative sampling needs --sample-fraction below 1")
        if self.tokenizer and self.char_level:
            out.append("char_level: cannot be combined with --tokenizer")
        if not self.tokenizer and not self.char_level and self.vocab_size < 257:
            out.append(
                f"vocab_size: {self.vocab_size} is too small for the 256-symbol byte alphabet "
                "plus <|endoftext|>; use at least 257"
            )
        if self.tokenizer_max_chars < 1:
            out.append(f"tokenizer_max_chars: {self.tokenizer_max_chars} must be positive")
        if self.workers < 0:
            out.append(f"workers: {self.workers} is negative")
        if self.shard:
            index, _, count = self.shard.partition("/")
            if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
                out.append(f"shard: {self.shard!r} is not I/N with 0 <= I < N")
            if not self.tokenizer:
                out.append("shard: sharded runs must share a tokenizer; pass --tokenizer")
            if self.sample != "random":
                out.append("shard: representative sampling needs the whole corpus in one run")
        return out

    @property
    def fixed_splits(self) -> dict[str, str]:
        """Split per source when sources fix the splits (empty: split by document hash)."""
        if not (self.valid_inputs or self.test_inputs):
            return {}
        fixed = dict.fromkeys(self.inputs, "train")
        fixed.update(dict.fromkeys(self.valid_inputs, "valid"))
        fixed.update(dict.fromkeys(self.test_inputs, "test"))
        return fixed

    @property
    def representative_clusters(self) -> int:
        return int(self.sample.partition(":")[2]) if self.sample != "random" else 0

    @property
    def shard_index(self) -> tuple[int, int] | None:
        if not self.shard:
            return None
        index, _, count = self.shard.partition("/")
        return int(index), int(count)


@dataclass
class MergeConfig:
    """Options of `lmforge data merge`."""

    shards: list[str] = option([], "Shard dataset dirs written by `data prepare --shard I/N`.")
    output: str = option("", "Dataset dir to create.")
    force: bool = option(False, "Replace an existing dataset at --output.")

    def problems(self) -> list[str]:
        out = []
        if not self.shards:
            out.append("shards: give the SHARD_DIR of every shard")
        if not self.output:
            out.append("output: --output DIR is required")
        return out


@dataclass
class InspectConfig:
    """Options of `lmforge data inspect`."""

    dataset: str = option("", "Dataset dir to inspect.")
    samples: int = option(3, "Decoded documents to show from the train split.")
    sample_chars: int = option(300, "Show at most this many characters of each sample.")
    split: str = option(
        "train", "Split to draw the samples from.", choices=("train", "valid", "test")
    )

    def problems(self) -> list[str]:
        out = [] if self.dataset else ["dataset: DATASET_DIR is required"]
        if self.samples < 0:
            out.append(f"samples: {self.samples} is negative")
        if self.sample_chars < 1:
            out.append(f"sample_chars: {self.sample_chars} must be positive")
        return out
