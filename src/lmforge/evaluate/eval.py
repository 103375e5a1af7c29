"""`lmforge eval MODEL --perplexity FILE... --report DIR [--baseline MODEL]`: sliding-window
perplexity (token, word, bits per byte) per file, written to report.json and report.md with
every number next to the data's and the model's sha256 and the settings. With a baseline,
deltas and a pass/fail on word perplexity; the exit code says whether the model passed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config import to_dict
from lmforge.config.evaluate import EvalConfig
from lmforge.errors import ConfigError, DataError
from lmforge.evaluate.perplexity import score_tokens
from lmforge.fsutil import atomic_dir, sha256_file, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class LineCorpus:
    """A text file read as one document per line, the way `data prepare` packs it: every line
    followed by <|endoftext|>; words count one end per line, bytes include the newline."""

    path: Path
    lines: list[str]

    @classmethod
    def read(cls, path: Path) -> LineCorpus:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror}") from exc
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise DataError(f"{path} holds no text to score")
        return cls(path, lines)

    @property
    def words(self) -> int:
        return sum(len(line.split()) + 1 for line in self.lines)

    @property
    def bytes(self) -> int:
        return sum(len(line.encode("utf-8")) + 1 for line in self.lines)

    def token_ids(self, tokenizer: Any) -> np.ndarray:
        eot = tokenizer.eos_token_id
        encoded = tokenizer(self.lines, add_special_tokens=False)["input_ids"]
        return np.fromiter((i for ids in encoded for i in (*ids, eot)), dtype=np.int64)


def score_model(ref: str, corpora: list[LineCorpus], cfg: EvalConfig) -> dict[str, Any]:
    from lmforge.train.model import load_pretrained

    model, tokenizer, card = load_pretrained(ref)
    positions = model.config.n_positions
    context = cfg.context_length or positions
    if context > positions:
        raise ConfigError(f"context_length: {context} is above {ref}'s {positions} positions")
    stride = cfg.stride or max(1, context // 2)
    if stride > context:
        raise ConfigError(f"stride: {stride} is longer than the window of {context} tokens")
    tasks = {}
    for corpus in corpora:
        scored = score_tokens(model, corpus.token_ids(tokenizer), context, stride, cfg.batch_size)
        tasks[f"perplexity/{corpus.path.stem}"] = scored.metrics(corpus.words, corpus.bytes)
        log.info(
            "%s on %s: word perplexity %.2f",
            ref,
            corpus.path.name,
            tasks[f"perplexity/{corpus.path.stem}"]["word_perplexity"],
        )
    files = (card or {}).get("files", {})
    return {
        "model": {"ref": ref, "model_sha256": files.get("model.safetensors")},
        "settings": {"context_length": context, "stride": stride, "batch_size": cfg.batch_size},
        "tasks": tasks,
    }


def compare(
    candidate: dict[str, Any], baseline: dict[str, Any], max_regression: float
) -> dict[str, Any]:
    rows = {}
    for task, metrics in candidate["tasks"].items():
        base = baseline["tasks"][task]
        change = metrics["word_perplexity"] / base["word_perplexity"] - 1
        rows[task] = {
            "candidate": metrics["word_perplexity"],
            "baseline": base["word_perplexity"],
            "change": change,
            "passed": change <= max_regression,
        }
    return {
        "metric": "word_perplexity",
        "max_regression": max_regression,
        "tasks": rows,
        "passed": all(r["passed"] for r in rows.values()),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of {report['model']['ref']}",
        "",
        f"Settings: {report['settings']}",
        "",
        "| task | token ppl | word ppl | bits/byte | tokens | tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for task, m in report["tasks"].items():
        lines.append(
            f"| {task} | {m['token_perplexity']:.3f} | {m['word_perplexity']:.3f} | "
            f"{m['bits_per_byte']:.4f} | {m['tokens']:.0f} | {m['tokens_per_second']:,.0f} |"
        )
    if comparison := report.get("comparison"):
        lines += [
            "",
            f"## Against {report['baseline']['model']['ref']}",
            "",
            "| task | candidate | baseline | change | verdict |",
            "|---|---|---|---|---|",
        ]
        for task, row in comparison["tasks"].items():
            verdict = "pass" if row["passed"] else "FAIL"
            lines.append(
                f"| {task} | {row['candidate']:.3f} | {row['baseline']:.3f} | "
                f"{row['change']:+.2%} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    corpora = [LineCorpus.read(Path(p)) for p in cfg.perplexity]
    report = score_model(cfg.model, corpora, cfg)
    report["data"] = {str(c.path): sha256_file(c.path) for c in corpora}
    report["options"] = to_dict(cfg)
    if cfg.baseline:
        report["baseline"] = score_model(cfg.baseline, corpora, cfg)
        report["comparison"] = compare(report, report["baseline"], cfg.max_regression)
    with atomic_dir(Path(cfg.report), force=cfg.force) as tmp:
        write_json_atomic(tmp / "report.json", report)
        (tmp / "report.md").write_text(markdown(report), encoding="utf-8")
    return report
