"""Builds click commands from config dataclasses: every field becomes an option whose help is
the field's help text and whose default is the field's default; `--config FILE.yaml` gives
values by field name and options given on the command line override them. Verbs with a
machine-readable result also get `--json`, which is output format, not part of the config.
`emit` prints a verb's result and `run` maps errors to one line and an exit code."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from lmforge import render
from lmforge.config import field_help, field_types, load_config
from lmforge.errors import ExitCode, GateRefused, LmforgeError

log = logging.getLogger("lmforge")
STATE = {"debug": False}  # set by the root command's --debug

JSON_HELP = "Print the result as one JSON document on stdout (and nothing else there)."
CONFIG_HELP = (
    "YAML file of option: value pairs (names as below, with underscores); "
    "options on the command line override it."
)


def _click_type(tp: Any, choices: tuple[str, ...] | None) -> Any:
    if choices:
        return click.Choice(choices)
    return {int: int, float: float, str: str}.get(tp, str)


def _show(default: Any) -> str:
    if isinstance(default, list):
        return ",".join(str(v) for v in default) or "none"
    if default == "":
        return "none"
    return str(default)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def config_command(cls: type, *positional: str, json_output: bool = False) -> Decorator:
    """Decorate a click command body `fn(config)` with options for every field of `cls`.

    Fields named in `positional` become arguments (a list field takes any number). With
    `json_output` the body is `fn(config, as_json)` and the command takes `--json`."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fields = dataclasses.fields(cls)
        hints = field_types(cls)
        params: list[Decorator] = []
        for f in fields:
            tp = hints[f.name]
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            if f.name in positional:
                is_list = typing.get_origin(tp) is list
                params.append(click.argument(f.name, nargs=-1 if is_list else 1, required=False))
                continue
            flag = "--" + f.name.replace("_", "-")
            help_text = field_help(f)
            if tp is bool:
                params.append(
                    click.option(
                        f"{flag}/--no-{f.name.replace('_', '-')}",
                        default=default,
                        show_default=True,
                        help=help_text,
                    )
                )
                continue
            params.append(
                click.option(
                    flag,
                    f.name,
                    type=_click_type(tp, f.metadata.get("choices")),
                    default=_show(default) if typing.get_origin(tp) is list else default,
                    show_default=True
                    if default not in ("", []) and not isinstance(default, list)
                    else _show(default),
                    help=help_text,
                )
            )
        if json_output:
            params.append(
                click.option("--json", "as_json", is_flag=True, default=False, help=JSON_HELP)
            )
        params.append(
            click.option(
                "--config",
                "config_file",
                type=click.Path(path_type=Path, dir_okay=False),
                help=CONFIG_HELP,
            )
        )

        @functools.wraps(fn)
        def command(config_file: Path | None, **values: Any) -> Any:
            as_json = values.pop("as_json", False)
            ctx = click.get_current_context()
            overrides = {}
            for name, value in values.items():
                source = ctx.get_parameter_source(name)
                given = source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
                if name in positional:
                    given = bool(value)
                    value = list(value) if isinstance(value, tuple) else value
                if given:
                    overrides[name] = value
            config: object = load_config(cls, config_file, overrides)
            return fn(config, as_json) if json_output else fn(config)

        decorated: Callable[..., Any] = command
        for param in reversed(params):
            decorated = param(decorated)
        return decorated

    return decorate


def emit(
    document: Any, as_json: bool, table: Callable[[Any], None], refusal: GateRefused | None = None
) -> None:
    """Print a verb's result (`table(document)`, or the JSON document), then fail with the
    refusal that the verb's own function decided on, if any: the result is printed either way."""
    if as_json:
        render.json_document(document)
    else:
        table(document)
    if refusal is not None:
        raise refusal


def run(group: click.Group, argv: list[str] | None) -> None:
    """Run the CLI: our errors become one line on stderr and their exit code."""
    try:
        # Without standalone mode click returns the code of a `click.exceptions.Exit`.
        code = group.main(args=argv, prog_name="lmforge", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("lmforge: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except LmforgeError as exc:
        if STATE["debug"]:
            log.exception("failed")
        click.echo(f"lmforge: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("lmforge: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:
        if STATE["debug"]:
            raise
        click.echo(
            f"lmforge: internal error: {type(exc).__name__}: {exc} "
            "(re-run with --debug for the traceback, and please report it)",
            err=True,
        )
        sys.exit(ExitCode.ERROR)
