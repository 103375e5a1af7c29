"""Typed config dataclasses and YAML loading (no torch); one module per group of verbs.

Every verb's options are one dataclass. A field's `help` metadata is its `--help` text and its
default is the CLI default; a YAML file (`--config`) gives values by field name and CLI
options override it. Loading reports every problem at once, naming the key and the bad value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmforge.errors import ConfigError

C = TypeVar("C")


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A config field with its `--help` text, fixed choices and numeric bounds (if any). A
    bound is declared here once; `build_config` checks it and names the key and the value."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def bound_problem(name: str, value: Any, f: dataclasses.Field[Any]) -> str | None:
    """Why `value` breaks the bounds declared on field `f`, or None. None values (an optional
    field left unset) and non-numbers are not bounded."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    ge, gt, le = (f.metadata.get(k) for k in ("ge", "gt", "le"))
    if ge is not None and value < ge:
        return (
            f"{name}: {value} is negative" if ge == 0 else f"{name}: {value} must be at least {ge}"
        )
    if gt is not None and value <= gt:
        return f"{name}: {value} must be greater than {gt}"
    if le is not None and value > le:
        return f"{name}: {value} must be at most {le}"
    return None


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, tp


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert a YAML or CLI value to the field type; raise ValueError naming key and value."""
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key}: a value is required, got null")
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        items = value
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif not isinstance(value, list | tuple):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return [coerce(f"{key}[{i}]", item, item_tp) for i, item in enumerate(items)]
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return {coerce(key, k, key_tp): coerce(f"{key}.{k}", v, value_tp) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, dict | list):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value, got a list")
    return data


def build_config(cls: type[C], values: dict[str, Any], origin: str = "config") -> C:
    """Build and validate `cls` from raw values; every problem is reported in one ConfigError."""
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    bounds: list[str] = []
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            problems.append(f"unknown key {key!r} (known keys: {', '.join(sorted(fields))})")
            continue
        try:
            kwargs[name] = coerce(name, value, hints[name])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            problems.append(f"{name}: {kwargs[name]!r} is not one of {', '.join(choices)}")
        bound = bound_problem(name, kwargs[name], fields[name])
        if bound:
            bounds.append(bound)
    if not problems:
        config = cls(**kwargs)
        validate = getattr(config, "problems", None)
        problems.extend(validate() if validate else [])
    problems = bounds + problems
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"{origin}: {count}: " + "; ".join(problems))
    return config


def load_config(cls: type[C], path: Path | None, overrides: dict[str, Any]) -> C:
    """YAML file values (if any) overridden by CLI values, then validated."""
    values = read_yaml(path) if path else {}
    values.update(overrides)
    origin = f"config {path} + command line" if path else "options"
    return build_config(cls, values, origin)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
