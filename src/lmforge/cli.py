"""The `lmforge` command: one table of verbs. The only module that imports every verb.

Verb bodies import their implementation lazily so that `lmforge --help` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from lmforge import __version__
from lmforge.cliutil import config_command
from lmforge.config.data import InspectConfig, MergeConfig, PrepareConfig
from lmforge.config.train import DistillConfig, TrainConfig, TuneConfig
from lmforge.errors import LmforgeError

log = logging.getLogger("lmforge")
_state = {"debug": False}


def _stdout() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lmforge")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (for machines).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(debug: bool, log_json: bool, verbose: bool) -> None:
    """lmforge: prepare data, train, evaluate, register and serve GPT-2-family models."""
    from lmforge.logs import setup_logging

    _state["debug"] = debug
    setup_logging(json_lines=log_json, verbose=verbose or debug)


@cli.group()
def data() -> None:
    """Prepare, merge and inspect dataset dirs (tokenizer + packed token files + manifest)."""


@data.command("prepare")
@config_command(PrepareConfig, "inputs")
def data_prepare(config: PrepareConfig) -> None:
    """Clean, deduplicate, redact, split, tokenize and pack INPUTS into a dataset dir.

    \b
    Examples:
      lmforge data prepare builtin:python-docs --output data/pydocs
      lmforge data prepare corpus/ notes.jsonl.gz --output data/mine --vocab-size 16384
      lmforge data prepare big.txt --shard 0/4 --tokenizer data/pydocs --output shards/0
    """
    from lmforge.data.prepare import prepare
    from lmforge.data.summary import print_summary

    result = prepare(config)
    print_summary(result.manifest, str(result.output), _stdout(), result.seconds)


@data.command("merge")
@config_command(MergeConfig, "shards")
def data_merge(config: MergeConfig) -> None:
    """Combine the SHARDS of `data prepare --shard I/N` into one dataset (dedup across shards)."""
    from lmforge.data.merge import merge
    from lmforge.data.summary import print_summary

    result = merge(config)
    print_summary(result.manifest, str(result.output), _stdout(), result.seconds)


@data.command("inspect")
@config_command(InspectConfig, "dataset")
def data_inspect(config: InspectConfig) -> None:
    """Summarize a dataset dir, check its files' sha256, and show decoded samples."""
    from lmforge.data.inspect import inspect
    from lmforge.data.summary import print_summary

    manifest, checks, samples = inspect(config)
    console = _stdout()
    print_summary(manifest, config.dataset, console)
    bad = {name: state for name, state in checks.items() if state != "ok"}
    console.print("files: " + ("all sha256 ok" if not bad else f"[red]{bad}[/red]"))
    for index, sample in enumerate(samples, 1):
        console.rule(f"{config.split} sample {index}")
        console.print(sample, markup=False, highlight=False)
    if bad:
        raise click.exceptions.Exit(1)


def _print_metrics(title: str, metrics: dict[str, float], where: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:,.4f}" if abs(value) < 1e5 else f"{value:,.0f}")
    console = _stdout()
    console.print(table)
    console.print(f"model: [bold]{where}[/bold]")


@cli.command("train")
@config_command(TrainConfig)
def train_cmd(config: TrainConfig) -> None:
    """Train a GPT-2 model on a dataset dir (or fine-tune --init on a task) with the HF Trainer.

    \b
    Examples:
      lmforge train --data .lmforge/datasets/ptb --output models/ptb-small --max-time 30
      lmforge train --data data/mine --init models/ptb-small --output models/mine --epochs 2
      torchrun --nproc_per_node 2 -m lmforge train --data data/ptb --output models/ddp
    """
    from lmforge.train.train import train

    result = train(config)
    if result.metrics:
        _print_metrics("final metrics", result.metrics, str(result.output))


@cli.command("distill")
@config_command(DistillConfig)
def distill_cmd(config: DistillConfig) -> None:
    """Distil --teacher into a student with fewer layers (DistilGPT2's recipe)."""
    from lmforge.train.distill import distill

    result = distill(config)
    if result.metrics:
        _print_metrics("student metrics", result.metrics, str(result.output))


@cli.command("tune")
@config_command(TuneConfig)
def tune_cmd(config: TuneConfig) -> None:
    """Search hyperparameters with Optuna (grid, random, TPE, GP) over train options."""
    from lmforge.train.tune import tune

    tune(config, _stdout())


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one line on stderr and a non-zero exit code."""
    try:
        # Without standalone mode click returns the code of a `click.exceptions.Exit`.
        code = cli.main(args=argv, prog_name="lmforge", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("lmforge: interrupted", err=True)
        sys.exit(130)
    except LmforgeError as exc:
        if _state["debug"]:
            log.exception("failed")
        click.echo(f"lmforge: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("lmforge: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        click.echo(
            f"lmforge: internal error: {type(exc).__name__}: {exc} "
            "(re-run with --debug for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)
