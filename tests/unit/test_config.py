from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lmforge.config import build_config, load_config, option
from lmforge.config.data import InspectConfig, PrepareConfig
from lmforge.config.deploy import LocalDeployConfig
from lmforge.config.evaluate import CanaryTask, EvalConfig
from lmforge.config.train import DistillConfig, TrainConfig, TuneConfig
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
            },
        )
    message = str(info.value)
    assert "vocab_size: 100 is too small" in message
    assert "split: [0.5, 0.2, 0.2] sums to 0.9" in message
    assert "sample: 'representative:abc'" in message


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
    from lmforge.config import read_yaml
    from lmforge.config.serve import ServeConfig

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


@dataclasses.dataclass
class Bounded:
    """One field per kind of bound, each default inside its bound."""

    at_least_one: int = option(1, "", ge=1)
    non_negative: int = option(0, "", ge=0)
    positive: float = option(1.0, "", gt=0)
    above_half: float = option(1.0, "", gt=0.5)
    at_most_ten: int = option(10, "", le=10)
    below_two: float = option(0.0, "", lt=2)
    fraction: float = option(0.5, "", ge=0, lt=1)
    open_fraction: float = option(0.5, "", gt=0, le=1)
    optional: int | None = option(None, "", ge=1)
    label: str = option("", "")


def test_each_kind_of_bound_names_key_and_value() -> None:
    bad = {
        "at_least_one": 0,
        "non_negative": -1,
        "positive": 0,
        "above_half": 0.5,
        "at_most_ten": 11,
        "below_two": 2,
        "fraction": 1.0,
        "open_fraction": 0,
        "optional": 0,
    }
    with pytest.raises(ConfigError) as info:
        build_config(Bounded, bad)
    message = str(info.value)
    assert "9 problems" in message  # every bound is reported at once
    for expected in (
        "at_least_one: 0 must be at least 1",
        "non_negative: -1 is negative",
        "positive: 0.0 must be positive",
        "above_half: 0.5 must be greater than 0.5",
        "at_most_ten: 11 must be at most 10",
        "below_two: 2.0 must be below 2",
        "fraction: 1.0 is outside [0, 1)",
        "open_fraction: 0.0 is outside (0, 1]",
        "optional: 0 must be at least 1",
    ):
        assert expected in message


def test_values_on_an_inclusive_bound_pass_and_none_is_unbounded() -> None:
    edge = {
        "at_least_one": 1,
        "non_negative": 0,
        "at_most_ten": 10,
        "fraction": 0,
        "optional": None,
    }
    config = build_config(Bounded, {**edge, "open_fraction": 1, "label": "-5"})
    assert (config.at_least_one, config.optional, config.open_fraction) == (1, None, 1.0)


def test_nan_breaks_every_bound() -> None:
    with pytest.raises(ConfigError, match="positive: nan must be positive"):
        build_config(Bounded, {"positive": "nan"})


def test_bounds_are_reported_with_type_errors_and_checked_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("inputs: [a.txt]\noutput: out\nmin_chars: -1\nminhash_perm: 8\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(PrepareConfig, path, {"near_dup_threshold": "0"})
    message = str(info.value)
    assert "4 problems" in message
    for expected in (
        "min_chars: -1 is negative",
        "minhash_perm: 8 must be at least 16",
        "near_dup_threshold: 0.0 is outside (0, 1]",
        "unknown key 'bogus'",
    ):
        assert message.count(expected) == 1
    # Without the type error, problems() runs too, and does not state a bound a second time.
    with pytest.raises(ConfigError) as info:
        load_config(PrepareConfig, None, {"inputs": "a.txt", "output": "o", "min_chars": "-1"})
    assert str(info.value).count("min_chars: -1") == 1


@pytest.mark.parametrize(
    ("cls", "values", "expected"),
    [
        (TrainConfig, {"warmup_ratio": "1"}, "warmup_ratio: 1.0 is outside [0, 1)"),
        (TrainConfig, {"grad_accum": "0"}, "grad_accum: 0 must be at least 1"),
        (TrainConfig, {"learning_rate": "0"}, "learning_rate: 0.0 must be positive"),
        (LocalDeployConfig, {"workers": "65"}, "workers: 65 is outside [1, 64]"),
        (EvalConfig, {"batch_size": "0"}, "batch_size: 0 must be at least 1"),
        (InspectConfig, {"sample_chars": "0"}, "sample_chars: 0 must be positive"),
        (CanaryTask, {"candidates": "49"}, "candidates: 49 must be at least 50"),
    ],
)
def test_a_real_config_field_bound_is_enforced_by_load_config(
    tmp_path: Path, cls: type, values: dict[str, str], expected: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: d\noutput: o\n" if cls is TrainConfig else "")
    with pytest.raises(ConfigError) as info:
        load_config(cls, path, values)
    assert str(info.value).count(expected) == 1


def test_every_default_is_inside_its_bounds() -> None:
    """A default is never checked by build_config (only given values are), so it must hold."""
    from lmforge.config import bound_problem
    from lmforge.config.evaluate import TASK_TYPES

    classes = [PrepareConfig, InspectConfig, TrainConfig, DistillConfig]
    classes += [TuneConfig, LocalDeployConfig, EvalConfig, *TASK_TYPES.values()]
    for cls in classes:
        for f in dataclasses.fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default
            assert bound_problem(f.name, default, f) is None, (cls.__name__, f.name)


def test_a_tracked_study_name_must_be_plain() -> None:
    """The study's MLflow run is found with a filter string: a quote in its name would end the
    string (tune derives the name from the output dir when --study-name is not given)."""
    from lmforge.config.train import TuneConfig

    base = {"space": "space.yaml", "data": "d"}
    with pytest.raises(ConfigError, match='study_name: "it\'s" may hold only'):
        build_config(TuneConfig, {**base, "output": "runs/it's"})
    build_config(TuneConfig, {**base, "output": "runs/it's", "study_name": "sweep-1"})
    build_config(TuneConfig, {**base, "output": "runs/it's", "track": False})
