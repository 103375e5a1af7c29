"""The NLL histogram and its population stability index (`lmforge.drift`), and the drift
reference as `lmforge monitor --drift` reads it from an eval report dir."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lmforge.drift import NLL_BUCKETS, PSI_ALARM, NllHistogram, psi
from lmforge.errors import ConfigError
from lmforge.monitor import read_reference


def sampled(mean: float, n: int = 5000, seed: int = 0) -> NllHistogram:
    rng = random.Random(seed)
    histogram = NllHistogram()
    histogram.add(max(0.0, rng.gauss(mean, 1.2)) for _ in range(n))
    return histogram


def test_the_same_distribution_stays_far_below_the_alarm() -> None:
    assert psi(sampled(5.0).counts, sampled(5.0).counts) == 0
    assert psi(sampled(5.0).counts, sampled(5.0, n=400, seed=1).counts) < 0.1


def test_a_shift_of_two_nats_is_over_the_alarm_and_psi_is_symmetric() -> None:
    reference, shifted = sampled(5.0), sampled(7.0, seed=2)
    assert psi(reference.counts, shifted.counts) > PSI_ALARM
    assert psi(reference.counts, shifted.counts) == pytest.approx(
        psi(shifted.counts, reference.counts)
    )


def test_counts_follow_prometheus_buckets() -> None:
    """A value on a bound counts in that bound's bucket (`le`), as Prometheus counts it; the
    cumulative exposition turns back into the same counts."""
    values = [0.5, 0.51, 3.0, 14.9, 15.0, 15.1, 40.0]
    ours = NllHistogram()
    ours.add(values)
    registry = CollectorRegistry()
    theirs = Histogram("nll", "", buckets=NLL_BUCKETS, registry=registry)
    for value in values:
        theirs.observe(value)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    (family,) = [f for f in families if f.name == "nll"]
    buckets = {float(s.labels["le"]): s.value for s in family.samples if s.name == "nll_bucket"}
    bounds = sorted(buckets)
    back = NllHistogram.from_cumulative(bounds, [buckets[b] for b in bounds])
    assert back.counts == ours.counts and ours.counts[0] == 1 and ours.counts[-1] == 2


def test_a_reference_over_other_buckets_is_refused(tmp_path: Path) -> None:
    (tmp_path / "drift.json").write_text(json.dumps({"buckets": [1, 2], "counts": [1, 2, 3]}))
    with pytest.raises(ConfigError, match=r"not lmforge's"):
        read_reference(str(tmp_path))


def test_a_report_dir_reference_reads_back(tmp_path: Path) -> None:
    reference = sampled(4.0)
    (tmp_path / "drift.json").write_text(json.dumps(reference.to_json()))
    name, read = read_reference(str(tmp_path))
    assert name == "" and read.counts == reference.counts
    assert read.mean_nll == pytest.approx(reference.mean_nll)
