"""The one promotion gate, used by `eval --baseline` and `registry promote`: metric-name
patterns (fnmatch, first match wins) with each metric's better direction (its natural one
unless a rule says), the largest allowed regression relative to the baseline, and absolute
bounds the candidate must keep whatever the baseline is.

A gate file (the registry's `gate.yaml`, a suite's `gate:` section):

    valid_loss: {better: lower, max_regression: 0.01}
    "*perplexity": {max_regression: 0.05}     # better: the name says (lower)
    sst2.accuracy: {max_regression: 0.01, min: 0.85, suite: sst2-eval.yaml}

`min` / `max` are a floor and a ceiling on the candidate's own value. A rule with either (or
with `required: true`) needs the metric: a candidate without it is refused ("missing"), with
the command that measures it (`suite:` names the eval suite whose task produces it, relative
to the gate file). Only exact metric names can be required; on a pattern, bounds apply to
every metric that matches. Otherwise a metric only one side has is not compared.

Metrics with no better direction (counts, sizes, speeds, chosen thresholds) are information,
not quality: they are gated only when a rule says which way is better (or bounds them).

A little over ~300 lines on purpose: the rules, their checks, the refusal wording and the
file syntax are the one definition of the gate that eval and the registry share."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from lmforge.config import read_yaml
from lmforge.errors import ConfigError, GateRefused

Better = Literal["higher", "lower"]
Verdict = Literal["ok", "regressed", "below min", "above max", "missing", "not compared"]
PASSING: tuple[Verdict, ...] = ("ok", "not compared")
RULE_KEYS = ("better", "max_regression", "min", "max", "required", "suite")

# Substrings of metric names, checked in order: which way is better.
_LOWER = ("perplexity", "loss", "bits_per_byte", "exposure", "extraction", "matched_tokens")
_HIGHER = ("rouge", "bleu", "accuracy", "f1", "spearman", "pearson")
# Float noise must not turn a regression exactly at the limit into a refusal.
_TOLERANCE = 1e-12


def natural_direction(metric: str) -> Better | None:
    """Which way is better for a metric, from its name (the part after the last dot)."""
    name = metric.rsplit(".", 1)[-1]
    if any(word in name for word in _LOWER):
        return "lower"
    if any(word in name for word in _HIGHER):
        return "higher"
    return None


@dataclass(frozen=True)
class Rule:
    better: Better | None  # None: the metric's natural direction
    max_regression: float
    floor: float | None = None  # `min:` the candidate's value must be at least this
    ceiling: float | None = None  # `max:` ... at most this
    required: bool = False  # a candidate without the metric is refused
    suite: str = ""  # the eval suite that measures the metric (for the refusal's command)

    @property
    def bounded(self) -> bool:
        return self.floor is not None or self.ceiling is not None


@dataclass(frozen=True)
class Gate:
    rules: Mapping[str, Rule]
    # For metrics that no pattern matches; None: they are not gated.
    default_regression: float | None = None

    def rule(self, metric: str) -> Rule | None:
        """The rule for `metric` with its direction resolved; None: not gated."""
        natural = natural_direction(metric)
        for pattern, rule in self.rules.items():
            if fnmatch.fnmatchcase(metric, pattern):
                better = rule.better or natural
                return replace(rule, better=better) if better or rule.bounded else None
        if self.default_regression is None or natural is None:
            return None
        return Rule(natural, self.default_regression)

    def required(self) -> list[str]:
        """The exact metric names the gate needs a candidate to have."""
        return [name for name, rule in self.rules.items() if rule.required or rule.bounded]


@dataclass(frozen=True)
class Check:
    """One metric under the gate. `change` is the signed relative change from the baseline,
    `regression` how much worse in the metric's direction (positive = worse)."""

    metric: str
    baseline: float | None
    candidate: float | None
    better: Better | None
    max_regression: float
    change: float | None
    regression: float | None
    verdict: Verdict
    min: float | None = None
    max: float | None = None
    suite: str = ""

    @property
    def compared(self) -> bool:
        return self.verdict != "not compared"

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING

    def reason(self) -> str:
        """Why the check refuses, in words ("" when it passes)."""
        if self.verdict == "below min":
            return f"{self.metric} {self.candidate:.4g} is below the floor min: {self.min:g}"
        if self.verdict == "above max":
            return f"{self.metric} {self.candidate:.4g} is above the ceiling max: {self.max:g}"
        if self.verdict == "regressed":
            return (
                f"{self.metric} {self.candidate:.4g} regresses {self.regression:.2%} from "
                f"{self.baseline:.4g} (allowed {self.max_regression:.2%})"
            )
        if self.verdict == "missing":
            return f"{self.metric} is missing"
        return ""

    def to_json(self) -> dict[str, Any]:
        document = {**asdict(self), "passed": self.passed}
        document.pop("suite")
        return document


@dataclass(frozen=True)
class Comparison:
    checks: list[Check]

    @property
    def regressed(self) -> list[str]:
        return [c.metric for c in self.checks if c.verdict == "regressed"]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": [c.to_json() for c in self.checks]}


def check(
    metric: str,
    better: Better | None,
    limit: float,
    baseline: float | None,
    candidate: float | None,
    rule: Rule | None = None,
) -> Check:
    """One metric against its allowed regression `limit` and the bounds of `rule`. A bound
    outranks a regression in the verdict: it holds whatever the baseline was."""
    rule = rule or Rule(better, limit)
    if candidate is None:
        verdict: Verdict = "missing" if rule.required or rule.bounded else "not compared"
        return Check(
            metric, baseline, candidate, better, limit, None, None, verdict, *_bounds(rule)
        )
    change = regression = None
    verdict = "not compared"
    if baseline is not None and better is not None:
        # A zero baseline compares absolute differences (a zero extraction rate must stay 0).
        scale = abs(baseline) or 1.0
        worse = (baseline - candidate) if better == "higher" else (candidate - baseline)
        regression = worse / scale
        verdict = "regressed" if regression > limit + _TOLERANCE else "ok"
        change = (candidate - baseline) / scale
    if rule.floor is not None and candidate < rule.floor - _TOLERANCE:
        verdict = "below min"
    elif rule.ceiling is not None and candidate > rule.ceiling + _TOLERANCE:
        verdict = "above max"
    elif verdict == "not compared" and rule.bounded:
        verdict = "ok"
    return Check(
        metric, baseline, candidate, better, limit, change, regression, verdict, *_bounds(rule)
    )


def _bounds(rule: Rule) -> tuple[float | None, float | None, str]:
    return rule.floor, rule.ceiling, rule.suite


def compare(
    gate: Gate, baseline: Mapping[str, float], candidate: Mapping[str, float]
) -> Comparison:
    """Every gated metric that either side has, in the candidate's order, then the
    baseline's, then the required ones neither has. A metric only one side has is listed as
    not compared and never refuses, unless the gate requires it of the candidate."""
    names = list(candidate) + [name for name in baseline if name not in candidate]
    names += [name for name in gate.required() if name not in names]
    checks = []
    for name in names:
        rule = gate.rule(name)
        if rule is not None:
            checks.append(
                check(
                    name,
                    rule.better,
                    rule.max_regression,
                    baseline.get(name),
                    candidate.get(name),
                    rule,
                )
            )
    return Comparison(checks)


def refusal(
    regressed: Iterable[str], candidate: str, baseline: str, hint: str | None = None
) -> GateRefused | None:
    """The error for a candidate that regressed on `regressed` metrics; None when none did."""
    metrics = list(regressed)
    if not metrics:
        return None
    return GateRefused(
        f"refused: {candidate} regresses against {baseline} beyond the gate ({', '.join(metrics)})",
        hint=hint,
    )


def comparison_refusal(
    comparison: Comparison,
    candidate: str,
    baseline: str,
    hint: str | None = None,
    measure: Callable[[Check], str] | None = None,
) -> GateRefused | None:
    """The error for every failed check of `comparison`: regressions (as `refusal` words
    them), bounds, and missing metrics with the command that measures each (`measure`)."""
    failures = comparison.failures
    if not failures:
        return None
    parts = []
    if comparison.regressed:
        parts.append(
            f"regresses against {baseline} beyond the gate ({', '.join(comparison.regressed)})"
        )
    parts += [c.reason() for c in failures if c.verdict in ("below min", "above max")]
    for c in failures:
        if c.verdict == "missing":
            command = measure(c) if measure else ""
            parts.append(
                f"lacks {c.metric}, which the gate requires"
                + (f"; run: {command}" if command else "")
            )
    return GateRefused(f"refused: {candidate} " + "; ".join(parts), hint=hint)


def document_refusal(
    comparison: Mapping[str, Any] | None, candidate: str, baseline: str
) -> GateRefused | None:
    """`refusal` for a comparison document (`Comparison.to_json()`, as in report.json)."""
    rows = [row for row in (comparison or {}).get("rows", []) if not row["passed"]]
    if all(row["verdict"] == "regressed" for row in rows):
        return refusal([row["metric"] for row in rows], candidate, baseline)
    failed = ", ".join(f"{row['metric']} ({row['verdict']})" for row in rows)
    return GateRefused(f"refused: {candidate} fails the gate against {baseline}: {failed}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rule_problems(pattern: str, rule: dict[Any, Any]) -> list[str]:
    problems = []
    if rule.get("better") not in (None, "higher", "lower"):
        problems.append(f"{pattern}: 'better' must be lower or higher, not {rule['better']!r}")
    for key in ("max_regression", "min", "max"):
        if key in rule and not _number(rule[key]):
            problems.append(f"{pattern}: {key} must be a number, not {rule[key]!r}")
    if _number(rule.get("min")) and _number(rule.get("max")) and rule["min"] > rule["max"]:
        problems.append(f"{pattern}: min {rule['min']} is above max {rule['max']}")
    if not isinstance(rule.get("required", False), bool):
        problems.append(f"{pattern}: required must be true or false, not {rule['required']!r}")
    if not isinstance(rule.get("suite", ""), str):
        problems.append(f"{pattern}: suite must be a path, not {rule['suite']!r}")
    needs = rule.get("required") or "min" in rule or "max" in rule
    if needs and any(char in pattern for char in "*?["):
        problems.append(
            f"{pattern}: only an exact metric name can be required (min/max require it); "
            "on a pattern, bound each metric by name"
        )
    return problems


def parse_rules(raw: object, where: str, base: Path | None = None) -> dict[str, Rule]:
    """Rules from a mapping of pattern: {better, max_regression, min, max, required, suite};
    `better` defaults to the metric's natural direction, `max_regression` to 0, `suite`
    paths are relative to `base`. Every problem at once."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of metric pattern: rule")
    rules: dict[str, Rule] = {}
    problems = []
    for pattern, rule in raw.items():
        if not isinstance(rule, dict) or not set(rule) <= set(RULE_KEYS):
            problems.append(
                f"{pattern}: expected {{better: higher|lower, max_regression: X, min: X, "
                f"max: X, required: true|false, suite: FILE}}, got {rule!r}"
            )
            continue
        found = _rule_problems(str(pattern), rule)
        problems += found
        if found:
            continue
        suite = rule.get("suite", "")
        if suite and base is not None and not Path(suite).is_absolute():
            suite = os.path.normpath(base / suite)
        rules[str(pattern)] = Rule(
            rule.get("better"),
            float(rule.get("max_regression", 0.0)),
            None if rule.get("min") is None else float(rule["min"]),
            None if rule.get("max") is None else float(rule["max"]),
            bool(rule.get("required", False)),
            suite,
        )
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return rules


def load_gate(path: Path) -> Gate:
    """A gate file: `metrics:` mapping metric patterns to rules (the registry's gate.yaml)."""
    rules = read_yaml(path).get("metrics")
    if not isinstance(rules, dict) or not rules:
        raise ConfigError(f"gate {path}: expected a 'metrics' mapping of metric: rule")
    return Gate(parse_rules(rules, f"gate {path}", base=path.parent))
