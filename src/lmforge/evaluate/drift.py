"""The input-drift reference: the per-token NLL histogram (see `lmforge.drift`) of the
evaluation text, its documents each scored alone from its first token, as the server scores a
sampled prompt, so that text like the evaluation text gives the live histogram the same shape.

It is stored in two places: `drift.json` in the eval report dir (logged with the report to
the model's MLflow run when tracking is on) and, when the evaluated model is a registry version
(`models:/NAME/VERSION` or `@ALIAS`), the version's tag `lmforge.drift_reference`, where
`lmforge monitor --drift` and the server's PSI gauge read it. A tag, not a run artifact: the
version's record is the one place both readers already look, and the histogram is ~300 bytes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from lmforge.config.evaluate import EvalConfig
from lmforge.drift import REFERENCE_TAG, NllHistogram
from lmforge.evaluate.perplexity import read_corpus
from lmforge.evaluate.scoring import LoadedModel, load_for_eval
from lmforge.evaluate.suite import Suite
from lmforge.fsutil import write_json_atomic

log = logging.getLogger(__name__)
REFERENCE_FILE = "drift.json"
# Enough tokens for a stable histogram over 20 buckets; more costs time and adds nothing.
MAX_TOKENS = 50_000


def drift_reference(cfg: EvalConfig, suite: Suite, report_dir: Path) -> dict[str, Any] | None:
    """Score the suite's perplexity text, write `drift.json` into `report_dir` and tag the
    registry version; returns the reference's summary for report.json (None when the suite
    has no perplexity text or the model is a classifier)."""
    specs = [spec for spec in suite.tasks if spec.type == "perplexity"]
    if not specs:
        return None
    lm = load_for_eval(cfg.model, cfg.unverified)
    if lm.kind != "lm":
        return None
    documents = [doc for spec in specs for doc in read_corpus(spec.options).documents]
    histogram = nll_histogram(lm, documents, cfg.batch_size)
    record = {**histogram.to_json(), "source": [str(spec.options.data) for spec in specs]}
    write_json_atomic(report_dir / REFERENCE_FILE, record)
    tagged = _tag_version(cfg.model, record)
    return {"tokens": histogram.tokens, "mean_nll": histogram.mean_nll, "version_tag": tagged}


@torch.no_grad()
def nll_histogram(lm: LoadedModel, documents: list[str], batch_size: int) -> NllHistogram:
    """Each document alone (cut to the model's positions), up to MAX_TOKENS scored tokens."""
    histogram = NllHistogram()
    encoded = [ids[: lm.positions] for ids in lm.tokenizer(documents)["input_ids"]]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    device = next(lm.model.parameters()).device
    for start in range(0, len(encoded), batch_size):
        if histogram.tokens >= MAX_TOKENS:
            break
        batch = encoded[start : start + batch_size]
        width = max(map(len, batch))
        inputs = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            inputs[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        logits = lm.model(input_ids=inputs.to(device), attention_mask=mask.to(device)).logits
        # [batch, width - 1]: the NLL of token t+1 given tokens 0..t.
        nll = -torch.log_softmax(logits[:, :-1].float(), dim=-1)
        nll = nll.gather(-1, inputs[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
        for row, ids in enumerate(batch):
            histogram.add(nll[row, : len(ids) - 1].tolist())
    return histogram


def _tag_version(ref: str, record: dict[str, Any]) -> str | None:
    """Store the reference on the registry version `ref` names; its NAME/VERSION, or None for
    a model dir. A store that cannot be written costs a warning, not the evaluation."""
    from lmforge.registry.resolve import resolve
    from lmforge.registry.store import client

    model = resolve(ref, hub=True)  # already pulled and verified by the evaluation: cached
    if model.version is None:
        return None
    try:
        client().set_model_version_tag(model.name, model.version, REFERENCE_TAG, json.dumps(record))
    except Exception as exc:  # mlflow raises many types for a store it cannot write
        log.warning("drift reference not stored on %s/%s: %s", model.name, model.version, exc)
        return None
    return f"{model.name}/{model.version}"
