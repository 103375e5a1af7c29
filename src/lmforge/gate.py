"""The one promotion gate, used by `eval --baseline` and `registry promote`: metric-name
patterns (fnmatch, first match wins) with each metric's better direction (its natural one
unless a rule says) and the largest allowed regression, relative to the baseline.

A gate file (the registry's `gate.yaml`, a suite's `gate:` section):

    valid_loss: {better: lower, max_regression: 0.01}
    "*perplexity": {max_regression: 0.05}     # better: the name says (lower)

Metrics with no better direction (counts, sizes, speeds, chosen thresholds) are information,
not quality: they are gated only when a rule says which way is better."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lmforge.config import read_yaml
from lmforge.errors import ConfigError, GateRefused

Better = Literal["higher", "lower"]
Verdict = Literal["ok", "regressed", "not compared"]

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
                return Rule(better, rule.max_regression) if better else None
        if self.default_regression is None or natural is None:
            return None
        return Rule(natural, self.default_regression)


@dataclass(frozen=True)
class Check:
    """One metric under the gate. `change` is the signed relative change from the baseline,
    `regression` how much worse in the metric's direction (positive = worse)."""

    metric: str
    baseline: float | None
    candidate: float | None
    better: Better
    max_regression: float
    change: float | None
    regression: float | None
    verdict: Verdict

    @property
    def compared(self) -> bool:
        return self.verdict != "not compared"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.verdict != "regressed"}


@dataclass(frozen=True)
class Comparison:
    checks: list[Check]

    @property
    def regressed(self) -> list[str]:
        return [c.metric for c in self.checks if c.verdict == "regressed"]

    @property
    def passed(self) -> bool:
        return not self.regressed

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": [c.to_json() for c in self.checks]}


def check(
    metric: str, better: Better, limit: float, baseline: float | None, candidate: float | None
) -> Check:
    """One metric against its allowed regression `limit`."""
    if baseline is None or candidate is None:
        return Check(metric, baseline, candidate, better, limit, None, None, "not compared")
    # A zero baseline compares absolute differences (a zero extraction rate must stay zero).
    scale = abs(baseline) or 1.0
    worse = (baseline - candidate) if better == "higher" else (candidate - baseline)
    regression = worse / scale
    verdict: Verdict = "regressed" if regression > limit + _TOLERANCE else "ok"
    change = (candidate - baseline) / scale
    return Check(metric, baseline, candidate, better, limit, change, regression, verdict)


def compare(
    gate: Gate, baseline: Mapping[str, float], candidate: Mapping[str, float]
) -> Comparison:
    """Every gated metric that either side has, in the candidate's order, then the
    baseline's; a metric only one side has is listed as not compared and never refuses."""
    names = list(candidate) + [name for name in baseline if name not in candidate]
    checks = []
    for name in names:
        rule = gate.rule(name)
        if rule is not None and rule.better is not None:
            checks.append(
                check(
                    name, rule.better, rule.max_regression, baseline.get(name), candidate.get(name)
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


def document_refusal(
    comparison: Mapping[str, Any] | None, candidate: str, baseline: str
) -> GateRefused | None:
    """`refusal` for a comparison document (`Comparison.to_json()`, as in report.json)."""
    rows = (comparison or {}).get("rows", [])
    return refusal([row["metric"] for row in rows if not row["passed"]], candidate, baseline)


def parse_rules(raw: object, where: str) -> dict[str, Rule]:
    """Rules from a mapping of pattern: {better: higher|lower, max_regression: X}; `better`
    defaults to the metric's natural direction, `max_regression` to 0. Every problem at once."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of metric pattern: rule")
    rules: dict[str, Rule] = {}
    problems = []
    for pattern, rule in raw.items():
        if not isinstance(rule, dict) or not set(rule) <= {"better", "max_regression"}:
            problems.append(
                f"{pattern}: expected {{better: higher|lower, max_regression: X}}, got {rule!r}"
            )
            continue
        better = rule.get("better")
        limit = rule.get("max_regression", 0.0)
        if better not in (None, "higher", "lower"):
            problems.append(f"{pattern}: 'better' must be lower or higher, not {better!r}")
        elif isinstance(limit, bool) or not isinstance(limit, int | float):
            problems.append(f"{pattern}: max_regression must be a number, not {limit!r}")
        else:
            rules[str(pattern)] = Rule(better, float(limit))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return rules


def load_gate(path: Path) -> Gate:
    """A gate file: `metrics:` mapping metric patterns to rules (the registry's gate.yaml)."""
    rules = read_yaml(path).get("metrics")
    if not isinstance(rules, dict) or not rules:
        raise ConfigError(f"gate {path}: expected a 'metrics' mapping of metric: rule")
    return Gate(parse_rules(rules, f"gate {path}"))
