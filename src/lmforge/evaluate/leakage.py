"""Leakage and memorization.

Canary exposure (Carlini et al., "The Secret Sharer", 2019): for a canary inserted into the
training data, exposure = log2 |R| − log2 rank, where rank is the canary's place among all
|R| possible secrets ordered by the model's log-perplexity given the canary's prefix. |R| is
10^9 here, too many to score, so (as in the paper's §4.3) the log-perplexities of random
candidate secrets are fitted with a skew-normal distribution and the canary's rank follows
from its CDF. Exposure near log2 |R| means memorised; a secret the model never saw scores
about 1/ln 2 ≈ 1.4 bits on average.

Verbatim extraction: prompts of `prefix_tokens` from the training split; the fraction whose
greedy continuation reproduces the next `match_tokens` exactly."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch

from lmforge.cards import DatasetManifest
from lmforge.config.evaluate import CanaryTask, ExtractionTask
from lmforge.errors import ConfigError, DataError
from lmforge.evaluate.data import data_entry
from lmforge.evaluate.result import TaskResult
from lmforge.evaluate.scoring import LoadedModel, continuation_logprobs, greedy_tokens

CONTROLS = 8


def training_dataset(lm: LoadedModel, given: str, task: str) -> Path:
    """The dataset dir named in the task, else the one the model's card says it trained on."""
    path = given or (lm.card.dataset.path if lm.card and lm.card.dataset else "")
    if not path:
        raise ConfigError(
            f"task {task}: name the training `dataset:` dir ({lm.ref} does not record one)"
        )
    return Path(path)


def exposure(canary_nll: float, candidate_nll: np.ndarray, space_bits: float) -> float:
    """−log2 P(a random secret's NLL ≤ the canary's), from a skew-normal fit to the
    candidates' NLLs, clipped to [0, log2 |R|]."""
    from scipy.stats import skewnorm

    shape, location, scale = skewnorm.fit(candidate_nll)
    log_cdf = skewnorm.logcdf(canary_nll, shape, location, scale)
    return float(min(max(-log_cdf / math.log(2), 0.0), space_bits))


def run_canary_exposure(lm: LoadedModel, spec: CanaryTask, batch_size: int) -> TaskResult:
    lm.require_lm("canary_exposure")
    directory = training_dataset(lm, spec.dataset, "canary_exposure")
    inserted = DatasetManifest.read(directory).canaries
    if not inserted:
        raise DataError(
            f"{directory} holds no canaries",
            hint="prepare the training data with `lmforge data prepare --canaries N`",
        )
    shape = inserted["format"]
    alphabet, digits, sep = shape["alphabet"], int(shape["digits"]), shape["sep"]
    space_bits = digits * math.log2(len(alphabet))
    rng = random.Random(spec.seed)

    def draw() -> str:
        return str(sep).join(rng.choice(alphabet) for _ in range(digits))

    candidates = [draw() for _ in range(spec.candidates)]
    controls = [draw() for _ in range(CONTROLS)]
    prefix = lm.encode(shape["prefix"])
    secrets = [item["secret"] for item in inserted["items"]]
    everything = secrets + controls + candidates
    nll = -np.array(
        continuation_logprobs(lm, [(prefix, lm.encode(" " + s)) for s in everything], batch_size)
    )
    canary_nll, control_nll = nll[: len(secrets)], nll[len(secrets) : len(secrets) + CONTROLS]
    candidate_nll = nll[len(secrets) + CONTROLS :]
    exposures = [exposure(x, candidate_nll, space_bits) for x in canary_nll]
    control_exposures = [exposure(x, candidate_nll, space_bits) for x in control_nll]
    metrics = {
        "exposure_mean": float(np.mean(exposures)),
        "exposure_max": float(np.max(exposures)),
        "control_exposure_mean": float(np.mean(control_exposures)),
        "secret_space_bits": space_bits,
        "canaries": float(len(secrets)),
    }
    details = {
        "data": data_entry(str(directory), "train"),
        "settings": {"candidates": spec.candidates, "seed": spec.seed, "prefix": shape["prefix"]},
        "canaries": [
            {
                "secret": item["secret"],
                "repeats": item["repeats"],
                "exposure": e,
                "nll": float(x),
                "rank_among_candidates": int(np.sum(candidate_nll < x)) + 1,
            }
            for item, e, x in zip(inserted["items"], exposures, canary_nll, strict=True)
        ],
        "control_exposures": control_exposures,
    }
    return TaskResult(metrics, details)


def run_extraction(lm: LoadedModel, spec: ExtractionTask, batch_size: int) -> TaskResult:
    lm.require_lm("extraction")
    directory = training_dataset(lm, spec.dataset, "extraction")
    manifest = DatasetManifest.read(directory)
    needed = spec.prefix_tokens + spec.match_tokens
    if needed > lm.positions:
        raise ConfigError(
            f"prefix_tokens + match_tokens = {needed} is above {lm.ref}'s {lm.positions} positions"
        )
    ids = np.fromfile(manifest.split_path("train"), dtype=manifest.dtype)
    if len(ids) < needed:
        raise DataError(f"{directory}: the train split has {len(ids)} tokens, fewer than {needed}")
    rng = np.random.default_rng(spec.seed)
    starts = np.sort(rng.integers(0, len(ids) - needed + 1, size=spec.samples))
    windows = torch.from_numpy(np.stack([ids[s : s + needed] for s in starts]).astype(np.int64))
    matched = []
    for begin in range(0, len(windows), batch_size):
        chunk = windows[begin : begin + batch_size]
        truth = chunk[:, spec.prefix_tokens :]
        produced = greedy_tokens(lm, chunk[:, : spec.prefix_tokens], spec.match_tokens)
        same = (produced == truth).int()
        # Length of the leading run of matches: cumulative product of the match mask.
        matched += same.cumprod(dim=1).sum(dim=1).tolist()
    matched_array = np.array(matched)
    metrics = {
        "extraction_rate": float(np.mean(matched_array >= spec.match_tokens)),
        "mean_matched_tokens": float(matched_array.mean()),
        "examples": float(len(matched)),
    }
    details = {
        "data": data_entry(str(directory), "train"),
        "settings": {
            "prefix_tokens": spec.prefix_tokens,
            "match_tokens": spec.match_tokens,
            "samples": spec.samples,
            "seed": spec.seed,
        },
    }
    return TaskResult(metrics, details)
