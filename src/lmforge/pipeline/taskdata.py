"""The task pipelines' data step (`python -m lmforge.pipeline.taskdata TASK --data-root DIR
--output DIR`): the corpora of ../shared/data (SOURCES.md) rewritten as headed, whitespace-
normalised files that `train --task ...`, `eval` and the benchmark's baselines all read, plus
`lm.txt`, the task's own unlabelled training text for pre-training a language model.

    sst2    train.tsv / dev.tsv (whole held-out sentences) / dev_leaky.tsv (dev_from_train)
    agnews  train.tsv (train_subset_10k) / dev.tsv (test.csv's descriptions)
    mrpc    train.tsv / dev.tsv              text, text_b, label (1 = paraphrase)
    stsb    train.tsv / dev.tsv              text, text_b, label (the 0-5 score)
    xsum    train.jsonl / dev.jsonl          document, summary (xsum_700 split, seeded)

SST-2's dev_from_train.tsv holds phrases cut from the sentences of train.tsv, so a model
trained on train.tsv has seen its answers. `honest_split` holds out whole sentences together
with every phrase they contain; `dev.tsv` is those sentences, and no train row is a phrase
of one of them."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lmforge.errors import DataError, LmforgeError
from lmforge.records import read_records

T = TypeVar("T")
TASKS = ("sst2", "agnews", "mrpc", "stsb", "xsum")
SENTIMENT = {"0": "negative", "1": "positive"}
# A "sentence" is a row no other row contains; shorter rows are phrases (SST's parse nodes).
MIN_SENTENCE_TOKENS = 5


@dataclass(frozen=True)
class Split:
    train: list[tuple[str, str]]  # (text, label)
    dev: list[tuple[str, str]]  # the held-out whole sentences


def normalise(text: str) -> str:
    return " ".join(text.split())


def full_sentences(texts: Iterable[str], min_tokens: int = MIN_SENTENCE_TOKENS) -> list[str]:
    """The texts (normalised, sorted) of at least `min_tokens` tokens that are no proper
    token span of another text: SST's whole sentences, whose phrases are the other rows."""
    present = {normalise(t) for t in texts}
    contained: set[str] = set()
    for text in present:
        tokens = text.split()
        for start in range(len(tokens)):
            for end in range(start + min_tokens, len(tokens) + 1):
                if end - start < len(tokens):
                    span = " ".join(tokens[start:end])
                    if span in present:
                        contained.add(span)
    return sorted(t for t in present if len(t.split()) >= min_tokens and t not in contained)


def phrase_of_any(phrase: str, sentences: Sequence[str]) -> bool:
    """Whether `phrase` is a token span of one of `sentences` (whitespace normalised)."""
    return _phrase_index(sentences).__contains__(f" {normalise(phrase)} ")


def _phrase_index(sentences: Sequence[str]) -> str:
    # One string, a sentence per line with a space either side: a phrase (no newline) padded
    # with spaces occurs in it exactly when it is a token span of one sentence.
    return "\n".join(f" {normalise(s)} " for s in sentences)


def honest_split(
    rows: Sequence[tuple[str, str]], holdout: int, seed: int, others: Iterable[str] = ()
) -> Split:
    """Hold out `holdout` whole sentences of `rows` (seeded choice) with their labels; train
    keeps every row that is not a token span of a held-out sentence. `others` (texts cut from
    the same sentences, like dev_from_train) only decide what is whole: a row of `rows` that
    is a span of one of them is a phrase, not a sentence."""
    labelled = {normalise(text): label for text, label in rows}
    sentences = [s for s in full_sentences([*labelled, *others]) if s in labelled]
    if holdout >= len(sentences):
        raise DataError(f"--holdout {holdout}: the data has only {len(sentences)} sentences")
    held = sorted(random.Random(seed).sample(sentences, holdout))
    index = _phrase_index(held)
    train = [(text, label) for text, label in labelled.items() if f" {text} " not in index]
    return Split(train=sorted(train), dev=[(s, labelled[s]) for s in held])


def _write_tsv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    # Normalised cells hold no tab or newline, so plain joins need no quoting (GLUE files hold
    # unbalanced quotes, which the readers take as they are).
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(columns) + "\n")
        for row in rows:
            handle.write("\t".join(normalise(cell) for cell in row) + "\n")
            count += 1
    return count


def _write_lm_text(path: Path, texts: Iterable[str]) -> None:
    unique = dict.fromkeys(normalise(t) for t in texts if t.strip())
    path.write_text("\n".join(unique) + "\n", encoding="utf-8")


def _limited(rows: list[T], limit: int) -> list[T]:
    return rows[:limit] if limit else rows


def prepare(task: str, root: Path, output: Path, *, seed: int, limit: int, holdout: int) -> dict:
    """Write the task's files under `output`; return their row counts."""
    output.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    if task == "sst2":
        sst = root / "sst2"
        rows = [
            (r["sentence"], r["label"])
            for r in read_records(sst / "train.tsv", ("sentence", "label"))
        ]
        leaky = read_records(sst / "dev_from_train.tsv", ("sentence", "label"))
        split = honest_split(rows, holdout, seed, others=[r["sentence"] for r in leaky])
        train = _limited(random.Random(seed).sample(split.train, len(split.train)), limit)
        named = [(t, SENTIMENT[lab]) for t, lab in train]
        counts["train"] = _write_tsv(output / "train.tsv", ("text", "label"), named)
        dev = [(t, SENTIMENT[lab]) for t, lab in _limited(split.dev, limit)]
        counts["dev"] = _write_tsv(output / "dev.tsv", ("text", "label"), dev)
        leak = [(r["sentence"], SENTIMENT[r["label"]]) for r in _limited(leaky, limit)]
        counts["dev_leaky"] = _write_tsv(output / "dev_leaky.tsv", ("text", "label"), leak)
        _write_lm_text(
            output / "lm.txt", full_sentences(t for t, _ in split.train) or [t for t, _ in train]
        )
    elif task == "agnews":
        ag = root / "agnews"
        classes = ag.joinpath("classes.txt").read_text(encoding="utf-8").split()
        train_rows = read_records(ag / "train_subset_10k.tsv", ("0", "1"), header=False)
        test_rows = read_records(ag / "test.csv", ("0", "2"), header=False)
        train = [(r["0"], r["1"]) for r in _limited(train_rows, limit)]
        dev = [(r["2"], classes[int(r["0"]) - 1]) for r in _limited(test_rows, limit)]
        counts["train"] = _write_tsv(output / "train.tsv", ("text", "label"), train)
        counts["dev"] = _write_tsv(output / "dev.tsv", ("text", "label"), dev)
        _write_lm_text(output / "lm.txt", (t for t, _ in train))
    elif task in ("mrpc", "stsb"):
        if task == "mrpc":
            files, fields, fmt, header = (
                ("train.tsv", "dev.tsv"),
                ("#1 String", "#2 String", "Quality"),
                "tsv",
                True,
            )
        else:
            files, fields, fmt, header = (
                ("sts-train.csv", "sts-dev.csv"),
                ("5", "6", "4"),
                "tsv",
                False,
            )
        texts: list[str] = []
        for name, file in zip(("train", "dev"), files, strict=True):
            records = _limited(
                read_records(root / task / file, fields, fmt=fmt, header=header), limit
            )
            pairs = [tuple(r[f] for f in fields) for r in records]
            counts[name] = _write_tsv(output / f"{name}.tsv", ("text", "text_b", "label"), pairs)
            if name == "train":
                texts += [p[0] for p in pairs] + [p[1] for p in pairs]
        _write_lm_text(output / "lm.txt", texts)
    elif task == "xsum":
        records = read_records(root / "xsum" / "xsum_700.jsonl", ("document", "summary"))
        shuffled = random.Random(seed).sample(records, len(records))
        cut = len(shuffled) - max(1, len(shuffled) // 7)  # 600 / 100 of xsum_700
        for name, part in (("train", shuffled[:cut]), ("dev", shuffled[cut:])):
            part = _limited(part, limit)
            with open(output / f"{name}.jsonl", "w", encoding="utf-8") as handle:
                for r in part:
                    handle.write(
                        json.dumps({"document": r["document"], "summary": r["summary"]}) + "\n"
                    )
            counts[name] = len(part)
        _write_lm_text(output / "lm.txt", (r["document"] for r in shuffled[:cut]))
    else:
        raise DataError(f"task {task!r} is not one of {', '.join(TASKS)}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmforge.pipeline.taskdata", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("task", choices=TASKS)
    parser.add_argument(
        "--data-root", type=Path, default=Path("../shared/data"), help="the folder of SOURCES.md"
    )
    parser.add_argument("--output", type=Path, required=True, help="folder for the task's files")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--limit", type=int, default=0, help="rows per file (0 = all): for tiny test runs"
    )
    parser.add_argument(
        "--holdout", type=int, default=1000, help="SST-2: whole sentences held out as dev"
    )
    args = parser.parse_args(argv)
    try:
        counts = prepare(
            args.task,
            args.data_root,
            args.output,
            seed=args.seed,
            limit=args.limit,
            holdout=args.holdout,
        )
    except LmforgeError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps({"task": args.task, "output": str(args.output), "rows": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
