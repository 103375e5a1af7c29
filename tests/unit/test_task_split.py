"""The task pipelines' data step: SST-2's honest dev split holds out whole sentences with every
phrase they contain, deterministically; a pipeline step runs lmforge modules only."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.errors import ConfigError, DataError
from lmforge.pipeline.run import load_pipeline
from lmforge.pipeline.taskdata import full_sentences, honest_split, phrase_of_any, prepare

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

SENTENCES = [
    ("a gorgeous , witty , seductive movie .", "1"),
    ("the plot is nothing but boilerplate clichés from start to finish", "0"),
    ("an utterly charming and hilarious film that reminded me why i love movies", "1"),
    ("it 's a bad sign when you 're rooting for the film to end", "0"),
    ("the acting is superb and the story moves along at a brisk pace", "1"),
    ("a dull , lifeless and predictable thriller with no thrills at all", "0"),
]


def phrases(sentence: str, label: str) -> list[tuple[str, str]]:
    """SST-style rows: every span of 1-4 tokens, with SST's trailing space on some."""
    tokens = sentence.split()
    return [
        (" ".join(tokens[i : i + n]) + (" " if i % 2 else ""), label)
        for n in range(1, 5)
        for i in range(len(tokens) - n + 1)
    ]


def rows() -> list[tuple[str, str]]:
    return [row for s, label in SENTENCES for row in [(s, label), *phrases(s, label)]]


def test_full_sentences_are_the_rows_no_other_row_contains() -> None:
    assert full_sentences(text for text, _ in rows()) == sorted(s for s, _ in SENTENCES)


def test_no_phrase_of_a_held_out_sentence_stays_in_train() -> None:
    split = honest_split(rows(), holdout=2, seed=7)
    held = [text for text, _ in split.dev]
    assert len(held) == 2 and set(held) <= {s for s, _ in SENTENCES}
    assert not [text for text, _ in split.train if phrase_of_any(text, held)]
    # The other sentences keep their phrases, except those a held-out sentence shares
    # ("the film" occurs in two sentences): those go too.
    kept = {s for s, _ in SENTENCES} - set(held)
    assert kept <= {text for text, _ in split.train}
    assert all(label == dict(SENTENCES)[text] for text, label in split.dev)


def test_phrases_match_on_whole_tokens_after_normalising_whitespace() -> None:
    held = ["a gorgeous , witty , seductive movie ."]
    assert phrase_of_any("  gorgeous ,\twitty ", held)
    assert not phrase_of_any("gorgeous , wit", held)  # not a token span
    assert not phrase_of_any("movie . a", held)  # spans never cross sentences


def test_the_split_is_seeded() -> None:
    first, again = honest_split(rows(), 2, seed=1), honest_split(rows(), 2, seed=1)
    assert first == again
    others = {tuple(honest_split(rows(), 2, seed=s).dev) for s in range(2, 8)}
    assert len(others) > 1


def test_other_texts_turn_a_row_into_a_phrase() -> None:
    """A train row that is a span of a longer text elsewhere (dev_from_train) is no sentence."""
    short = "a gorgeous , witty , seductive movie ."
    split = honest_split(rows(), 4, seed=3, others=[f"simply {short} indeed"])
    assert short not in [text for text, _ in split.dev]


def test_holding_out_more_sentences_than_there_are_is_refused() -> None:
    with pytest.raises(DataError, match="--holdout 6: the data has only 6 whole sentences"):
        honest_split(rows(), 6, seed=1)


@pytest.mark.skipif(not (DATA / "sst2").is_dir(), reason="../shared/data/sst2 is absent")
def test_real_sst2_split_leaks_no_held_out_phrase(tmp_path: Path) -> None:
    counts = prepare("sst2", DATA, tmp_path, seed=1, limit=3000, holdout=50)
    assert counts["dev"] == 50
    held, train = (
        [line.split("\t")[0] for line in (tmp_path / name).read_text().splitlines()[1:]]
        for name in ("dev.tsv", "train.tsv")
    )
    assert not [text for text in train if phrase_of_any(text, held)]
    assert (tmp_path / "suite.yaml").is_file() and (tmp_path / "lm.txt").is_file()


def test_a_step_module_outside_lmforge_is_refused(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("steps:\n  - {name: x, module: os, run: rm -rf /}\n")
    with pytest.raises(ConfigError, match="module 'os' is not lmforge or under it"):
        load_pipeline(pipeline)


TASK_CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "tasks").glob("*.yaml"))


@pytest.mark.parametrize("path", TASK_CONFIGS, ids=lambda p: p.stem)
def test_task_pipeline_steps_are_commands_their_clis_accept(path: Path) -> None:
    """Every step of a task pipeline parses: lmforge's steps by click (as for configs/*.yaml in
    test_config.py), the data step by the module's own argument parser; its gate file exists."""
    import shlex

    import click

    from lmforge.cli import cli
    from lmforge.config.train import TrainConfig
    from lmforge.pipeline import taskdata
    from lmforge.pipeline.run import _expand

    pipeline = load_pipeline(path)
    values = {k: _expand(str(v), pipeline.variables, k) for k, v in pipeline.variables.items()}
    values["version"] = "1"
    assert Path(values["gate"]).is_file()
    if "--task matching" in " ".join(s.run for s in pipeline.steps):
        choices = TrainConfig.__dataclass_fields__["task"].metadata.get("choices", ())
        if "matching" not in str(choices):
            pytest.skip("train --task matching comes with the matching branch")
    for step in pipeline.steps:
        args = shlex.split(step.run.format(**values))
        if step.module != "lmforge":
            assert step.module == "lmforge.pipeline.taskdata"
            assert taskdata.argument_parser().parse_args(args).task == path.stem
            continue
        command: click.Command = cli
        while isinstance(command, click.Group):
            command = command.commands[args.pop(0)]
        command.make_context(step.name, args)
