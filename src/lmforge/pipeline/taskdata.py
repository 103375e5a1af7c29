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

from lmforge.errors import DataError, LmforgeError
from lmforge.records import read_records

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
        raise DataError(
            f"--holdout {holdout}: the data has only {len(sentences)} whole sentences",
            hint="hold out fewer: train needs some of them",
        )
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


def _suite_tasks(task: str, labels: Sequence[str]) -> list[dict[str, object]]:
    """The eval suite's tasks on the dev files (paths relative to the suite, beside them)."""
    names = {label: label for label in labels}
    pair = {"text_a": "text", "text_b": "text_b"}
    if task == "sst2":
        return [
            {"name": "sst2", "type": "classification", "data": "dev.tsv", "labels": names},
            {
                "name": "sst2-leaky",
                "type": "classification",
                "data": "dev_leaky.tsv",
                "labels": dict(names),
            },
        ]
    if task == "agnews":
        return [{"name": "agnews", "type": "classification", "data": "dev.tsv", "labels": names}]
    if task == "mrpc":
        return [
            {
                "name": "mrpc",
                "type": "matching",
                "target": "label",
                "data": "dev.tsv",
                "fields": {**pair, "label": "label"},
                "threshold_data": "train.tsv",
                "threshold_limit": 1000,
            }
        ]
    if task == "stsb":
        return [
            {
                "name": "stsb",
                "type": "matching",
                "data": "dev.tsv",
                "fields": {**pair, "score": "label"},
            }
        ]
    return [{"name": "xsum", "type": "summarization", "data": "dev.jsonl", "max_new_tokens": 48}]


def write_suite(task: str, output: Path, labels: Sequence[str] = ()) -> None:
    import yaml

    suite = {"tasks": _suite_tasks(task, sorted(labels))}
    header = f"# The {task} pipeline's evaluation, written by lmforge.pipeline.taskdata.\n"
    (output / "suite.yaml").write_text(
        header + yaml.safe_dump(suite, sort_keys=False), encoding="utf-8"
    )


def _sst2(root: Path, out: Path, seed: int, limit: int, holdout: int) -> dict[str, int]:
    rows = read_records(root / "sst2" / "train.tsv", ("sentence", "label"), limit=limit)
    leaky = read_records(root / "sst2" / "dev_from_train.tsv", ("sentence", "label"), limit=limit)
    split = honest_split(
        [(r["sentence"], r["label"]) for r in rows],
        holdout,
        seed,
        others=[r["sentence"] for r in leaky],
    )
    train = random.Random(seed).sample(split.train, len(split.train))
    named = [(text, SENTIMENT[label]) for text, label in train]
    dev = [(text, SENTIMENT[label]) for text, label in split.dev]
    leak = [(r["sentence"], SENTIMENT[r["label"]]) for r in leaky]
    # Pre-training text: the train side's whole sentences (its phrases add nothing new).
    _write_lm_text(out / "lm.txt", full_sentences(t for t, _ in train) or [t for t, _ in train])
    write_suite("sst2", out, list(SENTIMENT.values()))
    return {
        "train": _write_tsv(out / "train.tsv", ("text", "label"), named),
        "dev": _write_tsv(out / "dev.tsv", ("text", "label"), dev),
        "dev_leaky": _write_tsv(out / "dev_leaky.tsv", ("text", "label"), leak),
    }


def _agnews(root: Path, out: Path, limit: int) -> dict[str, int]:
    # train_subset_10k.tsv: description, class name; test.csv: class number, title,
    # description. Both become description + class name.
    classes = (root / "agnews" / "classes.txt").read_text(encoding="utf-8").split()
    train_file, test_file = root / "agnews" / "train_subset_10k.tsv", root / "agnews" / "test.csv"
    train_rows = read_records(train_file, ("0", "1"), header=False, limit=limit)
    test_rows = read_records(test_file, ("0", "2"), header=False, limit=limit)
    train = [(r["0"], r["1"]) for r in train_rows]
    dev = [(r["2"], classes[int(r["0"]) - 1]) for r in test_rows]
    _write_lm_text(out / "lm.txt", (t for t, _ in train))
    write_suite("agnews", out, classes)
    return {
        "train": _write_tsv(out / "train.tsv", ("text", "label"), train),
        "dev": _write_tsv(out / "dev.tsv", ("text", "label"), dev),
    }


PAIR_FILES = {
    # task: (train file, dev file, text_a column, text_b column, label/score column, header)
    "mrpc": ("train.tsv", "dev.tsv", "#1 String", "#2 String", "Quality", True),
    "stsb": ("sts-train.csv", "sts-dev.csv", "5", "6", "4", False),  # tab-separated .csv
}


def _pairs(task: str, root: Path, out: Path, limit: int) -> dict[str, int]:
    train_file, dev_file, a, b, target, header = PAIR_FILES[task]
    counts, texts = {}, []
    for name, file in (("train", train_file), ("dev", dev_file)):
        records = read_records(
            root / task / file, (a, b, target), fmt="tsv", header=header, limit=limit
        )
        pairs = [(r[a], r[b], r[target]) for r in records]
        counts[name] = _write_tsv(out / f"{name}.tsv", ("text", "text_b", "label"), pairs)
        if name == "train":
            texts = [p[0] for p in pairs] + [p[1] for p in pairs]
    _write_lm_text(out / "lm.txt", texts)
    write_suite(task, out)
    return counts


def _xsum(root: Path, out: Path, seed: int, limit: int) -> dict[str, int]:
    records = read_records(root / "xsum" / "xsum_700.jsonl", ("document", "summary"), limit=limit)
    shuffled = random.Random(seed).sample(records, len(records))
    cut = len(shuffled) - max(1, len(shuffled) // 7)  # 600 train, 100 dev of xsum_700
    counts = {}
    for name, part in (("train", shuffled[:cut]), ("dev", shuffled[cut:])):
        lines = [json.dumps({"document": r["document"], "summary": r["summary"]}) for r in part]
        (out / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        counts[name] = len(part)
    _write_lm_text(out / "lm.txt", (r["document"] for r in shuffled[:cut]))
    write_suite("xsum", out)
    return counts


def prepare(
    task: str, root: Path, out: Path, *, seed: int = 1234, limit: int = 0, holdout: int = 1000
) -> dict[str, int]:
    """Write the task's files and its eval suite under `out`; return their row counts."""
    out.mkdir(parents=True, exist_ok=True)
    if task == "sst2":
        return _sst2(root, out, seed, limit, holdout)
    if task == "agnews":
        return _agnews(root, out, limit)
    if task in PAIR_FILES:
        return _pairs(task, root, out, limit)
    if task == "xsum":
        return _xsum(root, out, seed, limit)
    raise DataError(f"task {task!r} is not one of {', '.join(TASKS)}")


def argument_parser() -> argparse.ArgumentParser:
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
        "--limit",
        type=int,
        default=0,
        help="read the first N rows of each source file (0 = all): for tiny test runs",
    )
    parser.add_argument(
        "--holdout", type=int, default=1000, help="SST-2: whole sentences held out as dev"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser()
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
