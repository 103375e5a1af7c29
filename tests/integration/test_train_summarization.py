"""A summarizer fine-tuned by the real `train --task summarization` answers /v1/summarize in
its own format: the server's prompt is the training example's prompt (one shared function
builds it, `prompts.summary_pieces`), and the summary it learned comes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.prompts import SUMMARY_TEMPLATE
from lmforge.serve.engine import Engine
from lmforge.serve.tasks import summary_request, summary_texts
from lmforge.train.tasks import summary_prompt_ids
from tests.conftest import run_cli
from tests.integration.servers import Server

pytestmark = pytest.mark.integration
SUMMARY = "the cat sat on the mat"
DOCUMENTS = [
    "hello world , the cat sat on the mat . naïve café",
    "the mat , hello . the cat sat",
    "café naïve résumé hello world",
    "world hello , the mat sat on the cat",
]


def test_a_fine_tuned_summarizer_is_served_in_its_training_format(
    tiny_model: Path, tmp_path: Path
) -> None:
    rows = [{"document": f"  {doc} \n", "summary": SUMMARY} for doc in DOCUMENTS * 4]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    model = tmp_path / "summarizer"
    result = run_cli(
        "train", "--task", "summarization", "--init", str(tiny_model), "--data", str(data),
        "--output", str(model), "--max-steps", "40", "--eval-steps", "20",
        "--batch-size", "8", "--learning-rate", "1e-2", "--warmup-ratio", "0", "--no-track",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((model / "lmforge.json").read_text(encoding="utf-8"))
    assert card["task"] == "summarization" and card["prompt"] == SUMMARY_TEMPLATE

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    document = rows[0]["document"]
    trained_prompt = summary_prompt_ids(tokenizer, document, 128)
    with Engine(model) as engine:  # the request the route builds, id for id
        pieces = [engine.encode(text) for text in summary_texts(document)]
        assert summary_request(engine, pieces, 16, 30.0).prompt_ids == trained_prompt
    server = Server(model)
    try:
        answer = server.client().post("/v1/summarize", json={"text": document})
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["prompt_tokens"] == len(trained_prompt)
        # The summary it was taught, as far as serving's repetition penalty (1.2, on the
        # prompt's words too) lets greedy decoding follow it.
        summary = answer.json()["summary"]
        assert len(summary.split()) >= 3 and SUMMARY.startswith(summary), summary
    finally:
        assert server.stop() == 0, server.stderr()
