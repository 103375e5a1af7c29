"""Input drift, measured one way everywhere: the negative log-likelihood (nats) the model gives
each token of the text it is handed, counted over fixed buckets, and the population stability
index (PSI) between two such histograms. The server counts sampled prompts
(`lmforge_prompt_nll`), `eval` counts the evaluation text (the reference, in the version's
record), and `lmforge monitor --drift` compares the two.

PSI = sum over buckets of (live - ref) * ln(live / ref), on proportions. It is symmetric, needs
no assumption about the distribution's shape, and reads the same at every traffic volume; a KS
statistic would need the raw values, which a Prometheus histogram does not keep. The usual
reading (credit scoring, where PSI comes from): below 0.1 no shift, 0.1 to 0.25 a moderate one,
above 0.25 a shift worth acting on, hence the default alarm threshold of 0.25. Text of the
training domain moves the NLL distribution by far less than that; text of another domain
(source code, Early Modern English) moves its mass by several buckets."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (nats) of the buckets; a last bucket holds everything above 15. Half-nat steps
# where language models put most tokens (1 to 7 nats), wider ones in the tail.
NLL_BUCKETS = (0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 8, 9, 10, 12, 15)
PSI_ALARM = 0.25
# Tokens a live histogram needs before it is compared: PSI over few counts is mostly noise.
MIN_TOKENS = 200
# A bucket empty on one side counts as this proportion, so that ln() stays finite.
FLOOR = 1e-4
REFERENCE_TAG = "lmforge.drift_reference"


@dataclass
class NllHistogram:
    """Counts of per-token NLLs per bucket: `counts[i]` for NLL <= NLL_BUCKETS[i] (and above
    the bound before it); the last count is everything above the last bound."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(NLL_BUCKETS) + 1))
    total_nll: float = 0.0

    @property
    def tokens(self) -> int:
        return sum(self.counts)

    @property
    def mean_nll(self) -> float | None:
        return self.total_nll / self.tokens if self.tokens else None

    def add(self, nlls: Iterable[float]) -> None:
        for nll in nlls:
            self.counts[bisect.bisect_left(NLL_BUCKETS, nll)] += 1
            self.total_nll += nll

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": list(NLL_BUCKETS),
            "counts": self.counts,
            "tokens": self.tokens,
            "mean_nll": self.mean_nll,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NllHistogram:
        """A stored histogram; one over other buckets is refused (its PSI would mean nothing)."""
        buckets = [float(b) for b in raw.get("buckets", [])]
        if buckets != [float(b) for b in NLL_BUCKETS]:
            raise ValueError(f"the histogram has buckets {buckets}, not lmforge's {NLL_BUCKETS}")
        counts = [int(c) for c in raw["counts"]]
        if len(counts) != len(NLL_BUCKETS) + 1 or min(counts) < 0:
            raise ValueError(f"the histogram needs {len(NLL_BUCKETS) + 1} counts >= 0")
        mean = raw.get("mean_nll")
        return cls(counts, float(mean) * sum(counts) if mean is not None else 0.0)

    @classmethod
    def from_cumulative(cls, upper: Sequence[float], cumulative: Sequence[float]) -> NllHistogram:
        """From Prometheus's cumulative `le` buckets (sorted, +Inf last)."""
        if [float(b) for b in upper[:-1]] != [float(b) for b in NLL_BUCKETS]:
            raise ValueError(f"the live histogram has buckets {list(upper)}, not {NLL_BUCKETS}")
        counts = [int(cumulative[0])]
        counts += [int(b - a) for a, b in itertools.pairwise(cumulative)]
        return cls(counts)

    def minus(self, earlier: NllHistogram) -> NllHistogram:
        """What was counted since `earlier` (a snapshot of the same cumulative histogram)."""
        return NllHistogram(
            [a - b for a, b in zip(self.counts, earlier.counts, strict=True)],
            self.total_nll - earlier.total_nll,
        )


def psi(reference: Sequence[int], live: Sequence[int]) -> float:
    """Population stability index between two count vectors over the same buckets."""
    ref_total, live_total = sum(reference), sum(live)
    if not ref_total or not live_total:
        raise ValueError("both histograms need at least one count")
    total = 0.0
    for r, a in zip(reference, live, strict=True):
        expected = max(r / ref_total, FLOOR)
        actual = max(a / live_total, FLOOR)
        total += (actual - expected) * math.log(actual / expected)
    return total
