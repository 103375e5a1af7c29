"""Summarization: greedy generation after a prompt ("TL;DR:" zero-shot, the GPT-2 paper's
trick, or the format of a model fine-tuned with `--task summarization`), cut at the first
newline, scored with ROUGE-1/2/L and BLEU against the reference summaries."""

from __future__ import annotations

from lmforge.config.evaluate import SummarizationTask
from lmforge.errors import ConfigError
from lmforge.evaluate.data import data_entry, task_records
from lmforge.evaluate.result import Perturb, TaskResult
from lmforge.evaluate.scoring import LoadedModel, greedy_continuations
from lmforge.metrics import bleu, rouge
from lmforge.prompts import summary_pieces


def run_summarization(
    lm: LoadedModel, spec: SummarizationTask, batch_size: int, perturb: Perturb | None = None
) -> TaskResult:
    lm.require_lm("summarization")
    records = task_records(spec, ("document", "summary"))
    documents = [r[spec.column("document")] for r in records]
    references = [r[spec.column("summary")].strip() for r in records]
    if perturb is not None:
        documents = [perturb(doc) for doc in documents]
    before, _, after = summary_pieces("", spec.prompt)
    head, tail = lm.encode(before), lm.encode(after)
    room = lm.positions - spec.max_new_tokens - len(head) - len(tail)
    if room < 16:
        raise ConfigError(
            f"max_new_tokens: {spec.max_new_tokens} leaves {max(room, 0)} of {lm.ref}'s "
            f"{lm.positions} positions for the document",
            hint="lower max_new_tokens",
        )
    # Documents longer than the room keep their beginning, where news puts the gist.
    # The pieces of `prompts.summary_pieces`, each encoded alone, as training and serving do.
    texts = [summary_pieces(doc, spec.prompt)[1] for doc in documents]
    prompts = [head + lm.encode(text)[:room] + tail for text in texts]
    options = {"no_repeat_ngram_size": spec.no_repeat_ngram_size or None}
    outputs = greedy_continuations(lm, prompts, spec.max_new_tokens, batch_size, **options)
    summaries = [_first_line(lm.tokenizer.decode(ids, skip_special_tokens=True)) for ids in outputs]
    score, signature = bleu(summaries, references)
    metrics = {**rouge(summaries, references), "bleu": score}
    metrics["summary_words"] = sum(len(s.split()) for s in summaries) / len(summaries)
    metrics["examples"] = float(len(records))
    details = {
        "data": data_entry(spec.data),
        "settings": {
            "prompt": spec.prompt,
            "decoding": "greedy",
            "max_new_tokens": spec.max_new_tokens,
            "no_repeat_ngram_size": spec.no_repeat_ngram_size,
            "document_tokens": room,
            "bleu_signature": signature,
        },
        "samples": [
            {"summary": s, "reference": r}
            for s, r in zip(summaries[: spec.examples], references, strict=False)
        ],
    }
    return TaskResult(metrics, details)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[0] if lines else ""
