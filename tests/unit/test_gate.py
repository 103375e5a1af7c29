"""The one promotion gate (lmforge.gate) that `eval --baseline` and `registry promote` share."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.errors import ConfigError, ExitCode, GateRefused
from lmforge.gate import (
    Gate,
    Rule,
    compare,
    comparison_refusal,
    load_gate,
    natural_direction,
    parse_rules,
    refusal,
)

REGISTRY_GATE = Path(__file__).parents[2] / "src" / "lmforge" / "registry" / "gate.yaml"


def test_natural_directions_come_from_the_metric_name() -> None:
    names = ("valid_loss", "sst2.accuracy", "summaries.rougeL", "exposure_mean", "examples")
    assert [natural_direction(n) for n in names] == ["lower", "higher", "higher", "lower", None]


def test_first_matching_pattern_wins_and_the_default_covers_the_rest() -> None:
    gate = Gate(
        {"sst2.accuracy": Rule(None, 0.01), "*.typos_*": Rule("higher", 0.5)},
        default_regression=0.02,
    )
    assert gate.rule("sst2.accuracy") == Rule("higher", 0.01)
    assert gate.rule("robustness.typos_accuracy_ratio") == Rule("higher", 0.5)
    assert gate.rule("other.word_perplexity") == Rule("lower", 0.02)
    assert gate.rule("other.tokens_per_second") is None  # no direction: information only
    assert Gate({"valid_loss": Rule("lower", 0.0)}).rule("valid_accuracy") is None


def test_compare_regressions_in_each_direction() -> None:
    gate = Gate({"loss": Rule("lower", 0.10), "accuracy": Rule("higher", 0.0)})
    result = compare(gate, {"loss": 2.0, "accuracy": 0.5}, {"loss": 2.1, "accuracy": 0.4})
    loss, accuracy = result.checks
    assert (loss.verdict, loss.regression, loss.change) == (
        "ok",
        pytest.approx(0.05),
        pytest.approx(0.05),
    )
    assert accuracy.verdict == "regressed" and accuracy.regression == pytest.approx(0.2)
    assert accuracy.change == pytest.approx(-0.2)
    assert result.regressed == ["accuracy"] and not result.passed
    # Exactly at the limit passes despite float noise.
    assert compare(Gate({"loss": Rule("lower", 0.1)}), {"loss": 1.0}, {"loss": 1.1}).passed


def test_a_metric_one_side_lacks_is_not_compared_and_never_refuses() -> None:
    gate = Gate({"valid_loss": Rule("lower", 0.0), "test_loss": Rule("lower", 0.0)})
    result = compare(gate, {}, {"valid_loss": 3.0, "unrelated": 1.0})
    [row] = result.checks
    assert (row.metric, row.verdict, row.baseline, row.candidate) == (
        "valid_loss",
        "not compared",
        None,
        3.0,
    )
    assert result.passed and row.to_json()["passed"]


def test_a_zero_baseline_compares_absolute_differences() -> None:
    result = compare(Gate({"leak": Rule("lower", 0.0)}), {"leak": 0.0}, {"leak": 0.25})
    assert result.checks[0].regression == 0.25 and not result.passed


def test_the_refusal_names_the_metrics_and_has_its_own_exit_code() -> None:
    assert refusal([], "v2", "@production (v1)") is None
    error = refusal(["valid_loss"], "v2", "@production (v1)", hint="use --force")
    assert isinstance(error, GateRefused) and error.exit_code == ExitCode.GATE_REFUSED == 8
    assert error.one_line() == (
        "refused: v2 regresses against @production (v1) beyond the gate (valid_loss) (use --force)"
    )


def test_the_registry_gate_file_parses(tmp_path: Path) -> None:
    gate = load_gate(REGISTRY_GATE)
    assert gate.rules["valid_loss"] == Rule("lower", 0.01)
    assert gate.rules["valid_accuracy"] == Rule("higher", 0.01)
    bad = tmp_path / "gate.yaml"
    bad.write_text("metrics:\n  a: {better: sideways}\n  b: {max_regression: x}\n  c: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_gate(bad)
    for part in ("a: 'better' must be lower or higher", "b: max_regression must be a number", "c:"):
        assert part in str(caught.value)
    bad.write_text("other: {}\n")
    with pytest.raises(ConfigError, match="expected a 'metrics' mapping"):
        load_gate(bad)
    assert parse_rules({"x": {}}, "here") == {"x": Rule(None, 0.0)}


def test_a_floor_refuses_whatever_the_baseline_and_a_ceiling_likewise() -> None:
    gate = Gate({"sst2.accuracy": Rule(None, 0.01, floor=0.85), "ppl": Rule(None, 0.0, ceiling=9)})
    below = compare(gate, {"sst2.accuracy": 0.80}, {"sst2.accuracy": 0.84, "ppl": 9.5})
    verdicts = {c.metric: c.verdict for c in below.checks}
    assert verdicts == {"sst2.accuracy": "below min", "ppl": "above max"}
    assert not below.passed and below.regressed == []
    floor = below.checks[0]
    assert floor.reason() == "sst2.accuracy 0.84 is below the floor min: 0.85"
    assert floor.to_json()["min"] == 0.85 and floor.to_json()["passed"] is False
    # Above the floor but worse than the holder beyond the tolerance: a regression.
    gate = Gate({"sst2.accuracy": Rule(None, 0.01, floor=0.85)})
    regressed = compare(gate, {"sst2.accuracy": 0.90}, {"sst2.accuracy": 0.88})
    assert regressed.regressed == ["sst2.accuracy"]
    # Within the tolerance and above the floor; no holder value: the floor alone decides.
    assert compare(gate, {"sst2.accuracy": 0.90}, {"sst2.accuracy": 0.895}).passed
    [alone] = compare(gate, {}, {"sst2.accuracy": 0.86}).checks
    assert (alone.verdict, alone.baseline, alone.change) == ("ok", None, None)


def test_a_required_metric_the_candidate_lacks_refuses_with_the_command() -> None:
    gate = Gate(
        {"sst2.accuracy": Rule(None, 0.0, floor=0.5, suite="s.yaml"), "x.f1": Rule(None, 0)}
    )
    result = compare(gate, {"sst2.accuracy": 0.9, "x.f1": 0.5}, {"valid_loss": 1.0})
    verdicts = {c.metric: c.verdict for c in result.checks}
    # x.f1 has no bound and is not required: not compared, as before.
    assert verdicts == {"sst2.accuracy": "missing", "x.f1": "not compared"}
    error = comparison_refusal(
        result, "v3", "@production (v2)", measure=lambda c: f"lmforge eval ... --suite {c.suite}"
    )
    assert error is not None and error.exit_code == ExitCode.GATE_REFUSED
    assert str(error) == (
        "refused: v3 lacks sst2.accuracy, which the gate requires; "
        "run: lmforge eval ... --suite s.yaml"
    )
    # Required even when neither side has it.
    assert [
        c.verdict for c in compare(Gate({"a.f1": Rule(None, 0, required=True)}), {}, {}).checks
    ] == ["missing"]


def test_bounds_and_required_parse_with_every_problem_named(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("metrics:\n  sst2.accuracy: {max_regression: 0.01, min: 0.85, suite: s.yaml}\n")
    rule = load_gate(path).rules["sst2.accuracy"]
    assert rule == Rule(None, 0.01, floor=0.85, suite=str(tmp_path / "s.yaml"))
    assert load_gate(path).required() == ["sst2.accuracy"]
    path.write_text(
        "metrics:\n  a: {min: x}\n  b: {min: 2, max: 1}\n  c: {required: maybe}\n"
        '  "*.f1": {min: 0.5}\n  d: {floor: 1}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_gate(path)
    for part in (
        "a: min must be a number",
        "b: min 2 is above max 1",
        "c: required must be true or false",
        "*.f1: only an exact metric name can be required",
        "d: expected {better",
    ):
        assert part in str(caught.value)
