"""Sliding-window perplexity, as in the Hugging Face fixed-length perplexity guide: windows of
`context` tokens start every `stride` tokens and each token is scored once, by the first window
whose new part covers it, with up to `context - stride` tokens of context before it. Losses are
summed per token (not averaged per window), so the totals are exact; word-level perplexity and
bits per byte (lm-evaluation-harness conventions) make different tokenizers comparable."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.cards import DatasetManifest
from lmforge.config.evaluate import PerplexityTask
from lmforge.errors import ConfigError, DataError
from lmforge.evaluate.data import data_entry
from lmforge.evaluate.result import Perturb, TaskResult
from lmforge.evaluate.scoring import LoadedModel
from lmforge.hf import IGNORE
from lmforge.records import read_records
from lmforge.train.metrics import summed_loss


@dataclass
class Scored:
    """Summed negative log-likelihood (nats) over `tokens` predicted tokens."""

    nll: float
    tokens: int
    seconds: float

    def metrics(self, words: int, text_bytes: int) -> dict[str, float]:
        return {
            "token_perplexity": math.exp(self.nll / self.tokens),
            "word_perplexity": math.exp(self.nll / words),
            "bits_per_byte": self.nll / (text_bytes * math.log(2)),
            "loss": self.nll / self.tokens,
            "tokens": float(self.tokens),
            "words": float(words),
            "bytes": float(text_bytes),
            "tokens_per_second": self.tokens / max(self.seconds, 1e-9),
        }


def windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, new) per window: tokens [begin, end) are fed and the last `new` are the
    window's targets. With stride < context every token after the first is scored exactly once;
    with stride == context (disjoint windows) each window's first token has no context and is
    not scored, as in the guide."""
    out = []
    previous_end = 0
    for begin in range(0, length, stride):
        end = min(begin + context, length)
        new = end - max(previous_end, 1)
        if new > 0:
            out.append((begin, end, new))
        previous_end = end
        if end == length:
            break
    return out


def _batches(
    ids: np.ndarray, plan: list[tuple[int, int, int]], batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(plan), batch_size):
        chunk = plan[start : start + batch_size]
        width = max(end - begin for begin, end, _ in chunk)
        inputs = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (begin, end, new) in enumerate(chunk):
            window = torch.from_numpy(ids[begin:end].astype(np.int64))
            inputs[row, : end - begin] = window
            mask[row, : end - begin] = 1
            labels[row, end - begin - new : end - begin] = window[-new:]
        yield {"input_ids": inputs, "attention_mask": mask, "labels": labels}


def score_tokens(
    model: Any, ids: np.ndarray, context: int, stride: int, batch_size: int = 8
) -> Scored:
    """Sum the NLL of every token of `ids` after the first with sliding windows."""
    if stride < 1 or stride > context:
        raise ValueError(f"stride {stride} must be in [1, context {context}]")
    started = time.perf_counter()
    plan = windows(len(ids), context, stride)
    total, count = summed_loss(model, _batches(ids, plan, batch_size))
    return Scored(total, count, time.perf_counter() - started)


@dataclass
class Corpus:
    """Documents scored the way `data prepare` packs them: each followed by <|endoftext|>.
    Words count one end per document and bytes include it (lm-evaluation-harness style)."""

    source: str
    documents: list[str]

    @property
    def words(self) -> int:
        return sum(len(doc.split()) + 1 for doc in self.documents)

    @property
    def bytes(self) -> int:
        return sum(len(doc.encode("utf-8")) + 1 for doc in self.documents)

    def token_ids(self, tokenizer: Any) -> np.ndarray:
        eot = tokenizer.eos_token_id
        encoded = tokenizer(self.documents, add_special_tokens=False)["input_ids"]
        return np.fromiter((i for ids in encoded for i in (*ids, eot)), dtype=np.int64)


def read_corpus(spec: PerplexityTask) -> Corpus:
    """A .txt file (one document per non-empty line), a record file (role: text) or a
    dataset dir's split, decoded back to documents."""
    path = Path(spec.data)
    if path.is_dir():
        documents = _dataset_documents(path, spec.split)
    elif path.suffix in (".txt", ".raw", ".tokens", ""):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror}") from exc
        documents = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        column = spec.column("text")
        records = read_records(path, [column], fmt=spec.format, header=spec.header)
        documents = [r[column].strip() for r in records if r[column].strip()]
    if spec.limit:
        documents = documents[: spec.limit]
    if not documents:
        raise DataError(f"{path} holds no text to score")
    return Corpus(str(path), documents)


def _dataset_documents(directory: Path, split: str) -> list[str]:
    from lmforge.data.tokenizer import end_of_text_id, load_tokenizer

    manifest = DatasetManifest.read(directory)
    ids = np.fromfile(manifest.split_path(split), dtype=manifest.dtype)
    tokenizer = load_tokenizer(str(directory))
    boundaries = np.flatnonzero(ids == end_of_text_id(tokenizer))
    starts = np.concatenate([[0], boundaries[:-1] + 1])
    return [tokenizer.decode(ids[a:b].tolist()) for a, b in zip(starts, boundaries, strict=True)]


def run_perplexity(
    lm: LoadedModel, spec: PerplexityTask, batch_size: int, perturb: Perturb | None = None
) -> TaskResult:
    lm.require_lm("perplexity")
    corpus = read_corpus(spec)
    if perturb is not None:
        corpus = Corpus(corpus.source, [perturb(doc) for doc in corpus.documents])
    context = spec.context_length or lm.positions
    if context > lm.positions:
        raise ConfigError(f"context_length: {context} is above {lm.ref}'s {lm.positions} positions")
    stride = spec.stride or max(1, context // 2)
    if stride > context:
        raise ConfigError(
            f"stride: {stride} is longer than the window of {context} tokens",
            hint=f"{lm.ref} has {lm.positions} positions; use a stride of at most that",
        )
    scored = score_tokens(lm.model, corpus.token_ids(lm.tokenizer), context, stride, batch_size)
    metrics = scored.metrics(corpus.words, corpus.bytes)
    details = {
        "data": data_entry(corpus.source, spec.split if Path(corpus.source).is_dir() else None),
        "settings": {"context_length": context, "stride": stride},
        "documents": len(corpus.documents),
    }
    return TaskResult(metrics, details)
