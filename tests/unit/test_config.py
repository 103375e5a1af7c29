from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config import build_config, load_config
from lmforge.config.data import PrepareConfig
from lmforge.errors import ConfigError


def test_yaml_values_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prep.yaml"
    path.write_text("inputs: [a.txt]\noutput: out\nvocab_size: 4096\nsplit: [0.8, 0.1, 0.1]\n")
    config = load_config(PrepareConfig, path, {"vocab_size": "1024"})
    assert config.inputs == ["a.txt"]
    assert config.vocab_size == 1024  # the command line wins over the file
    assert config.split == [0.8, 0.1, 0.1]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("inputs: [a.txt]\noutput: out\nvocab_size: lots\nmin_chars: 3.5\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(PrepareConfig, path, {})
    message = str(info.value)
    assert "3 problems" in message
    assert "vocab_size: expected an integer, got 'lots'" in message
    assert "min_chars: expected an integer, got 3.5" in message
    assert "unknown key 'bogus'" in message


def test_semantic_checks_name_key_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(
            PrepareConfig,
            {
                "inputs": ["x"],
                "output": "o",
                "vocab_size": 100,
                "split": "0.5,0.2,0.2",
                "sample": "representative:abc",
                "shard": "3/2",
            },
        )
    message = str(info.value)
    assert "vocab_size: 100 is too small" in message
    assert "split: [0.5, 0.2, 0.2] sums to 0.9" in message
    assert "sample: 'representative:abc'" in message
    assert "shard: '3/2' is not I/N" in message
    assert "pass --tokenizer" in message


def test_choices_are_enforced() -> None:
    with pytest.raises(ConfigError, match="dedup: 'fuzzy' is not one of none, exact, exact\\+near"):
        build_config(PrepareConfig, {"inputs": ["x"], "output": "o", "dedup": "fuzzy"})


def test_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(PrepareConfig, path, {})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(PrepareConfig, tmp_path / "missing.yaml", {})


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (Path(__file__).parents[2] / "configs").glob("*.yaml"))
)
def test_shipped_configs_parse(name: str) -> None:
    """Every file in configs/ is a valid config of the verb it is for (data prepare, train or
    serve: the first whose options hold all its keys); the paths a user gives on the command
    line are filled in here."""
    import dataclasses

    from lmforge.config import read_yaml
    from lmforge.config.serve import ServeConfig
    from lmforge.config.train import TrainConfig

    path = Path(__file__).parents[2] / "configs" / name
    values = read_yaml(path)
    if "steps" in values:
        return check_pipeline(path)
    if "tasks" in values:
        from lmforge.evaluate.suite import load_suite

        load_suite(path)
        return
    verb = next(
        v
        for v in (PrepareConfig, TrainConfig, ServeConfig)
        if set(values) <= {f.name for f in dataclasses.fields(v)}
    )
    defaults = {"inputs": ["in.txt"], "data": "ds", "output": "out", "model": "m"}
    for key, value in defaults.items():
        if key in {f.name for f in dataclasses.fields(verb)} and not values.get(key):
            values[key] = value
    build_config(verb, values, str(path))


def check_pipeline(path: Path) -> None:
    """Every step of a pipeline file is a real lmforge command whose options click accepts."""
    import shlex

    import click

    from lmforge.cli import cli
    from lmforge.pipeline.run import load_pipeline

    pipeline = load_pipeline(path)
    values = {**pipeline.variables, "teacher_version": "1", "student_version": "2"}
    for step in pipeline.steps:
        args = shlex.split(step.run.format(**values))
        command: click.Command = cli
        while isinstance(command, click.Group):
            command = command.commands[args.pop(0)]
        command.make_context(step.name, args)
