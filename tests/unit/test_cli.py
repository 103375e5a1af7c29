"""The CLI surface: help for every verb and option, and errors as one line without a traceback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lmforge.cli import cli
from lmforge.config.data import InspectConfig, PrepareConfig
from lmforge.config.deploy import LocalDeployConfig
from lmforge.config.evaluate import EvalConfig
from lmforge.config.registry import (
    DeleteConfig,
    DiffConfig,
    ListConfig,
    PromoteConfig,
    PullConfig,
    RegisterConfig,
    RollbackConfig,
    ShowConfig,
)
from lmforge.config.serve import BenchConfig, MonitorConfig, ServeConfig
from lmforge.config.train import DistillConfig, TrainConfig, TuneConfig
from tests.conftest import run_cli

VERBS = {
    ("data", "prepare"): PrepareConfig,
    ("data", "inspect"): InspectConfig,
    ("train",): TrainConfig,
    ("distill",): DistillConfig,
    ("tune",): TuneConfig,
    ("eval",): EvalConfig,
    ("registry", "register"): RegisterConfig,
    ("registry", "list"): ListConfig,
    ("registry", "show"): ShowConfig,
    ("registry", "diff"): DiffConfig,
    ("registry", "promote"): PromoteConfig,
    ("registry", "rollback"): RollbackConfig,
    ("registry", "pull"): PullConfig,
    ("registry", "delete"): DeleteConfig,
    ("serve",): ServeConfig,
    ("bench",): BenchConfig,
    ("monitor",): MonitorConfig,
    ("deploy", "local"): LocalDeployConfig,
}
# Verbs whose options are plain click options rather than a config dataclass.
PLAIN_VERBS = {("pipeline", "run"), ("quickstart",)}


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _leaf_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_help_lists_every_verb() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for group in {path[0] for path in _leaf_commands(cli)}:  # top-level verbs and groups
        assert group in result.output
    assert sorted(_leaf_commands(cli)) == sorted([*VERBS, *PLAIN_VERBS])


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_option_is_documented_with_its_default(verb: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*verb, "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--config FILE" in text
    command = cli
    for part in verb:
        command = command.commands[part]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    for f in dataclasses.fields(VERBS[verb]):
        param = options[f.name]
        if isinstance(param, click.Argument):
            continue
        assert param.help, f"--{f.name} has no help"
        assert " ".join(param.help.split()) in text
        assert param.show_default, f"--{f.name} does not show its default"
    assert text.count("[default:") >= sum(isinstance(p, click.Option) for p in command.params) - 2


def test_errors_are_one_line_with_exit_code(tmp_path: Path) -> None:
    result = run_cli(
        "data", "prepare", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "o")
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"lmforge: error: input not found: {tmp_path / 'missing.txt'} "
        "(give a file, directory, glob, hf: or builtin:)"
    ]
    assert "Traceback" not in result.stderr


def test_config_errors_are_listed_together(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("output: o\nvocab_size: 12\nsplit: [0.5, 0.5]\n")
    result = run_cli("data", "prepare", "x.txt", "--config", str(config), "--min-chars", "-1")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    for part in ("min_chars: -1 is negative", "split: [0.5, 0.5] must be three", "vocab_size: 12"):
        assert part in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "data", "inspect", str(tmp_path))
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "has no manifest.json" in result.stderr


def test_log_json(tmp_path: Path) -> None:
    import json

    corpus_file = tmp_path / "tiny.txt"
    corpus_file.write_text("just one short line of text here\n")
    result = run_cli(
        "--log-json",
        "data",
        "prepare",
        str(corpus_file),
        "--output",
        str(tmp_path / "o"),
        "--vocab-size",
        "300",
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r["level"] == "warning" and "split is empty" in r["message"] for r in records)


def test_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(cli, ["--help"]).output
    assert "Exit codes:" in text
    for line in (
        "  0  success",
        "  1  error",
        "  2  bad option",
        "  8  the promotion gate refused",
    ):
        assert line in text
    promote = CliRunner().invoke(cli, ["registry", "promote", "--help"], terminal_width=200)
    assert "exit code is 8 when the gate refuses" in " ".join(promote.output.split())


JSON_VERBS = [
    ("data", "inspect"),
    ("eval",),
    ("registry", "register"),
    ("registry", "list"),
    ("registry", "show"),
    ("registry", "diff"),
    ("registry", "promote"),
]


@pytest.mark.parametrize("verb", JSON_VERBS)
def test_machine_readable_verbs_take_json(verb: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*verb, "--help"], terminal_width=200)
    assert "--json" in result.output and "one JSON document on stdout" in result.output


def test_data_inspect_json_is_the_only_thing_on_stdout(tmp_path: Path) -> None:
    import json

    corpus_file = tmp_path / "tiny.txt"
    corpus_file.write_text("just one short line of text here\nand another line of text\n")
    out = tmp_path / "o"
    prepared = run_cli(
        "data", "prepare", str(corpus_file), "--output", str(out), "--vocab-size", "300"
    )
    assert prepared.returncode == 0, prepared.stderr
    result = run_cli("data", "inspect", str(out), "--json", "--samples", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and set(document["files"].values()) == {"ok"}
    assert document["dataset"] == str(out) and document["split"] == "train"
    assert document["manifest"]["splits"]
    (out / "train.bin").write_bytes(b"\0\0")
    broken = run_cli("data", "inspect", str(out), "--json")
    assert broken.returncode == 1 and json.loads(broken.stdout)["files"]["train.bin"] != "ok"


def test_pipeline_captures_fields_of_a_steps_json() -> None:
    from lmforge.errors import LmforgeError
    from lmforge.pipeline.run import Step, capture

    step = Step(
        "register", "registry register m --json", capture={"v": "version", "p": "gate.passed"}
    )
    assert capture(step, '{"version": "3", "gate": {"passed": true}}') == {"v": "3", "p": "true"}
    with pytest.raises(LmforgeError, match=r"no 'gate\.passed' in its output for p"):
        capture(step, '{"version": "3"}')
    with pytest.raises(LmforgeError, match="not one JSON document") as caught:
        capture(step, "registered models:/m/3")
    assert "--json" in caught.value.one_line()


def test_registry_documents_are_assembled_from_versions() -> None:
    from types import SimpleNamespace

    from lmforge.registry.info import describe, diff_rows

    def version(number: str, loss: float, config: str) -> SimpleNamespace:
        tags = {
            "lmforge.metric.valid_loss": repr(loss),
            "lmforge.parent": "m/1" if number == "2" else "",
            "lmforge.training_config": config,
        }
        return SimpleNamespace(
            name="m",
            version=number,
            aliases=["production"] if number == "1" else [],
            creation_timestamp=0,
            run_id="r",
            source="s",
            tags=tags,
        )

    left = describe(version("1", 3.0, '{"lr": 0.001}'))
    right = describe(version("2", 3.5, '{"lr": 0.0'))  # a tag cut short
    assert (left["metrics"], left["config"], right["config"]) == (
        {"valid_loss": 3.0},
        {"lr": 0.001},
        {"truncated": '{"lr": 0.0'},
    )
    rows = {row["field"]: row for row in diff_rows(left, right)}
    assert rows["metrics.valid_loss"] == {
        "field": "metrics.valid_loss",
        "left": "3.0000",
        "right": "3.5000",
        "differs": True,
    }
    assert rows["parent"]["right"] == "m/1" and rows["config.lr"]["right"] == "-"


def test_config_files_named_in_help_exist() -> None:
    """Every `configs/...yaml` that an example in `--help` names is a real file."""
    import re

    root = Path(__file__).resolve().parents[2]
    named = set(re.findall(r"configs/[\w./-]+\.yaml", (root / "src/lmforge/cli.py").read_text()))
    assert named
    assert sorted(n for n in named if not (root / n).is_file()) == []
