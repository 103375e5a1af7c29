"""Typed config dataclasses and YAML loading (no torch); one module per group of verbs.

Every verb's options are one dataclass. A field's `help` metadata is its `--help` text and its
default is the CLI default; a YAML file (`--config`) gives values by field name and CLI
options override it. Loading reports every problem at once, naming the key and the bad value.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmforge.errors import ConfigError

C = TypeVar("C")
T = TypeVar("T")


def option(
    default: T,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> T:
    """A config field with its `--help` text, fixed choices and numeric bounds (if any). A
    bound is declared here once; `build_config` checks it and names the key and the value."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def field_help(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("help", ""))


# The comparison each kind of bound makes with the value; NaN fails every one.
_HOLDS: dict[str, Callable[[float, float], bool]] = {
    "ge": operator.ge,
    "gt": operator.gt,
    "le": operator.le,
    "lt": operator.lt,
}
_WORDS = {
    "ge": "must be at least",
    "gt": "must be greater than",
    "le": "must be at most",
    "lt": "must be below",
}


def _number(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else str(bound)


def _phrase(kind: str, bound: float) -> str:
    if kind == "ge" and bound == 0:
        return "is negative"
    if kind == "gt" and bound == 0:
        return "must be positive"
    return f"{_WORDS[kind]} {_number(bound)}"


def bound_problem(name: str, value: object, f: dataclasses.Field[Any]) -> str | None:
    """Why `value` breaks the bounds declared on field `f`, or None. None values (an optional
    field left unset) and non-numbers are not bounded; NaN breaks every bound.

    One bound reads "is negative" (ge=0), "must be at least N", "must be positive" (gt=0),
    "must be greater than N", "must be at most N" or "must be below N"; a lower and an upper
    bound together read as the interval: "is outside [0, 1)"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    bounds = {k: float(f.metadata[k]) for k in _HOLDS if f.metadata.get(k) is not None}
    if all(_HOLDS[kind](value, bound) for kind, bound in bounds.items()):
        return None
    low = "ge" if "ge" in bounds else "gt"
    high = "le" if "le" in bounds else "lt"
    if low in bounds and high in bounds:
        opening = "[" if low == "ge" else "("
        closing = "]" if high == "le" else ")"
        interval = f"{opening}{_number(bounds[low])}, {_number(bounds[high])}{closing}"
        return f"{name}: {value} is outside {interval}"
    kind = low if low in bounds else high
    return f"{name}: {value} {_phrase(kind, bounds[kind])}"


def declared_problem(name: str, value: object, f: dataclasses.Field[Any]) -> str | None:
    """Why `value` breaks the choices or bounds declared on field `f`, or None."""
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        return f"{name}: {value!r} is not one of {', '.join(choices)}"
    return bound_problem(name, value, f)


def declared_problems(config: object) -> list[str]:
    """The declared choices and bounds a config breaks: `build_config` checks values on the
    way in from YAML and flags; this checks a config built in code."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"{config!r} is not a config dataclass instance")
    found = (
        declared_problem(f.name, getattr(config, f.name), f) for f in dataclasses.fields(config)
    )
    return [problem for problem in found if problem]


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
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    declared: list[str] = []
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
        if problem := declared_problem(name, kwargs[name], fields[name]):
            declared.append(problem)
    if not problems:
        config = cls(**kwargs)
        validate = getattr(config, "problems", None)
        problems.extend(validate() if validate else [])
    problems = declared + problems
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


def to_dict(config: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"{config!r} is not a config dataclass instance")
    return dataclasses.asdict(config)
