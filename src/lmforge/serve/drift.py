"""Input drift on the server: a sampled fraction (`--drift-sample`) of generation prompts is
scored under the served model once its caller has the answer, and every scored token's NLL goes
into the histogram `lmforge_prompt_nll{model}` (see `lmforge.drift`). When the model came from
the registry and its version holds an eval reference, `lmforge_prompt_nll_psi{model}` is the
population stability index of everything scored so far against it, for the alert rules.

The caller never waits for this: the score request is submitted after its own request has
finished, at a moment when no request is waiting for the engine (low priority); a sample that
finds no such moment within two minutes is dropped, and at most 64 wait at once, so under
sustained load the sample thins out rather than adding work."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import weakref
from typing import TYPE_CHECKING

from prometheus_client import Gauge, Histogram

from lmforge.drift import MIN_TOKENS, NLL_BUCKETS, REFERENCE_TAG, NllHistogram, psi
from lmforge.errors import LmforgeError
from lmforge.serve.request import FinishReason, Kind, Request

if TYPE_CHECKING:
    from lmforge.serve.engine import Engine
    from lmforge.serve.metrics import Metrics
    from lmforge.serve.models import ModelInfo
    from lmforge.serve.state import AppState

log = logging.getLogger(__name__)
# How often a sampled prompt's background task looks whether its request has finished.
POLL_SECONDS = 0.05
# A sample waits at most this long for its request to finish and then for a moment when no
# caller is queued (a request refused before the engine took it never finishes).
GIVE_UP_SECONDS = 120.0
# Samples waiting at once; past this, new prompts are not sampled (sustained overload).
MAX_PENDING = 64


class Drift:
    """The drift metrics on one metrics registry, the running counts behind the PSI gauge, and
    each served version's reference (None when it has none)."""

    def __init__(self, metrics: Metrics) -> None:
        self.nll = Histogram(
            "lmforge_prompt_nll",
            "Per-token negative log-likelihood (nats) of sampled prompts under the served model",
            ["model"],
            buckets=NLL_BUCKETS,
            registry=metrics.registry,
        )
        self.psi = Gauge(
            "lmforge_prompt_nll_psi",
            "Population stability index of the sampled prompts' NLL against the eval reference",
            ["model"],
            registry=metrics.registry,
        )
        self.live: dict[tuple[str, str | None], NllHistogram] = {}
        self.references: dict[tuple[str, str | None], NllHistogram | None] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def observe(self, model: str, version: str | None, nlls: list[float]) -> None:
        for nll in nlls:
            self.nll.labels(model).observe(nll)
        live = self.live.setdefault((model, version), NllHistogram())
        live.add(nlls)
        reference = self.references.get((model, version))
        if reference is not None and live.tokens >= MIN_TOKENS:
            self.psi.labels(model).set(psi(reference.counts, live.counts))


_drifts: weakref.WeakKeyDictionary[Metrics, Drift] = weakref.WeakKeyDictionary()


def drift_for(metrics: Metrics) -> Drift:
    if metrics not in _drifts:
        _drifts[metrics] = Drift(metrics)
    return _drifts[metrics]


def sample(state: AppState, engine: Engine, model: ModelInfo, requests: list[Request]) -> None:
    """The hook a generation call makes once its requests are admitted: pick this call's
    sampled prompts and score each in the background after its request has finished."""
    rate = state.config.drift_sample
    if rate <= 0 or engine.labels:  # off, or a classifier: there is no NLL to take
        return
    drift = drift_for(state.metrics)
    for request in requests:
        if len(drift.tasks) >= MAX_PENDING:
            return
        if len(request.prompt_ids) >= 2 and random.random() < rate:
            work = _score_after(drift, state, engine, model, request)
            task = asyncio.get_running_loop().create_task(work)
            drift.tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(drift.tasks.discard)


async def _score_after(
    drift: Drift, state: AppState, engine: Engine, info: ModelInfo, request: Request
) -> None:
    model, version = info.name, info.version
    give_up = time.monotonic() + GIVE_UP_SECONDS
    # Callers come first: wait for this one to have its answer and for no other to be queued.
    while not request.finished or engine.snapshot().waiting:
        if time.monotonic() > give_up:
            return
        await asyncio.sleep(POLL_SECONDS)
    if (model, version) not in drift.references:
        found = await asyncio.to_thread(reference, info.registered_as, version)
        drift.references[(model, version)] = found
    ids = request.prompt_ids[-engine.max_seq_len :]
    score = engine.request(ids, Kind.SCORE, timeout=state.config.request_timeout, score_from=1)
    try:
        event = await engine.complete(score)
    except LmforgeError as exc:  # overloaded, shutting down or swapped out: skip this sample
        log.debug("drift sample not scored: %s", exc)
        return
    if event.finish_reason is FinishReason.STOP and event.scores:
        drift.observe(model, version, [-logprob for logprob in event.scores])


def reference(name: str | None, version: str | None) -> NllHistogram | None:
    """The eval reference that `lmforge eval` stored on a registry version, if any."""
    if name is None or version is None:
        return None
    from lmforge.registry.store import client

    try:
        tags = client().get_model_version(name, version).tags
        raw = tags.get(REFERENCE_TAG)
        return NllHistogram.from_json(json.loads(raw)) if raw else None
    except Exception as exc:  # an unreachable store or a bad tag costs the gauge, not serving
        log.warning("no drift reference for %s/%s: %s", name, version, exc)
        return None
