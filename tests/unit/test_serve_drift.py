"""The server's drift sample, in-process over a real engine: a sampled prompt's per-token NLLs
(those of `transformers`' forward on the same ids) land in `lmforge_prompt_nll{model}` after
the answer; with `--drift-sample 0` nothing is scored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from lmforge.serve.engine import Engine
from lmforge.serve.state import ModelInfo
from tests.unit.inprocess import app_state, client, running_engine

PROMPT = "the cat sat on the mat. hello world"


@pytest.fixture(scope="module")
def served(tiny_model: Path) -> Iterator[tuple[Engine, ModelInfo]]:
    with running_engine(tiny_model) as served:
        yield served


def nll_samples(text: str) -> dict[str, float]:
    """lmforge_prompt_nll's _count and _sum, by sample name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "lmforge_prompt_nll":
            out.update(
                {s.name: s.value for s in family.samples if s.name.endswith(("_count", "_sum"))}
            )
    return out


def test_a_sampled_prompt_is_scored_after_its_answer(
    served: tuple[Engine, ModelInfo], tiny_model: Path
) -> None:
    from transformers import GPT2LMHeadModel

    engine, _ = served
    ids = engine.encode(PROMPT)
    with client(app_state(served, drift_sample=1.0)) as http:
        answer = http.post("/v1/generate", json={"prompt": PROMPT, "max_new_tokens": 2})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 20
        while not (samples := nll_samples(http.get("/metrics").text)):
            assert time.monotonic() < deadline, "the sampled prompt was never scored"
            time.sleep(0.05)
    assert samples["lmforge_prompt_nll_count"] == len(ids) - 1
    model = GPT2LMHeadModel.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")
    assert samples["lmforge_prompt_nll_sum"] == pytest.approx(float(expected), rel=1e-3)


def test_sampling_off_scores_nothing(served: tuple[Engine, ModelInfo]) -> None:
    with client(app_state(served, drift_sample=0.0)) as http:
        for _ in range(3):
            answer = http.post("/v1/generate", json={"prompt": PROMPT, "max_new_tokens": 2})
            assert answer.status_code == 200, answer.text
        time.sleep(0.3)
        assert nll_samples(http.get("/metrics").text) == {}
