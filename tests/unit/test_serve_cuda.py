"""The CUDA path (opt-in: `pytest -m gpu`, where a GPU is present): fp32 parity with
transformers, bfloat16/float16 within their precision, and batching that pays on the device.
The CPU paths stay the default; these skip without CUDA."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch

from lmforge.config.serve import EngineSettings
from lmforge.serve.engine import Engine
from lmforge.serve.request import FinishReason, Kind, Request, SamplingParams
from lmforge.serve.runner import Runner
from lmforge.serve.scheduler import Chunk
from tests.conftest import build_model_dir

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

VOCAB = 50257


@pytest.fixture(scope="module")
def distil_shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir(
        tmp_path_factory.mktemp("cuda") / "distil",
        n_layer=6,
        n_embd=768,
        n_head=12,
        n_positions=1024,
        vocab_size=VOCAB,
    )


def engine_logits(model_dir: Path, dtype: str, ids: torch.Tensor) -> torch.Tensor:
    """fp32 logits [T, vocab] of the engine on CUDA for one prompt, prefilled in one chunk."""
    runner = Runner(model_dir, EngineSettings(device="cuda", dtype=dtype, kv_slots=1))
    request = Request(ids.tolist())
    request.slot = 0
    with torch.inference_mode():
        hidden = runner.hidden_states([Chunk(request, 0, len(request.prompt_ids))])
        return runner.model.logits(hidden).float().cpu()


@pytest.fixture(scope="module")
def reference(distil_shaped: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (64,))
    model = GPT2LMHeadModel.from_pretrained(distil_shaped).eval()
    with torch.no_grad():
        return ids, model(ids[None]).logits[0]


def test_float32_on_cuda_matches_transformers(
    distil_shaped: Path, reference: tuple[torch.Tensor, torch.Tensor]
) -> None:
    ids, expected = reference
    got = engine_logits(distil_shaped, "float32", ids)
    assert (got - expected).abs().max().item() < 1e-3


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cuda_keeps_the_distribution(
    distil_shaped: Path, reference: tuple[torch.Tensor, torch.Tensor], dtype: str
) -> None:
    """Half precision keeps each position's logits nearly parallel to fp32's and mostly the
    same most likely token (random weights leave some top-2 gaps within rounding)."""
    ids, expected = reference
    got = engine_logits(distil_shaped, dtype, ids)
    cosine = torch.nn.functional.cosine_similarity(got, expected, dim=-1)
    assert cosine.min().item() > (0.995 if dtype == "bfloat16" else 0.999)
    same_top = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert same_top >= 0.8


def tokens_per_second(engine: Engine, concurrent: int, new_tokens: int) -> float:
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)

    async def run_all() -> list[int]:
        requests = [engine.request([11 + i] * 16, Kind.GENERATE, params) for i in range(concurrent)]
        events = await asyncio.gather(*(engine.complete(r) for r in requests))
        assert all(e.finish_reason is FinishReason.LENGTH for e in events)
        return [len(e.token_ids or []) for e in events]

    started = time.perf_counter()
    produced = sum(asyncio.run(run_all()))
    return produced / (time.perf_counter() - started)


def test_batched_decode_on_cuda_outpaces_one_stream(distil_shaped: Path) -> None:
    """On a GPU a batch-32 decode step costs about what a batch-1 step does, so 32 streams
    must give several times the tokens per second of one (measured in the same run)."""
    settings = EngineSettings(device="cuda", dtype="bfloat16", kv_slots=32, max_batch_size=32)
    with Engine(distil_shaped, settings) as engine:
        tokens_per_second(engine, 4, 8)  # warm-up: CUDA context, kernels, allocator
        single = tokens_per_second(engine, 1, 64)
        batched = tokens_per_second(engine, 32, 64)
    print(f"cuda bf16 decode: 1 stream {single:.0f} tok/s, 32 streams {batched:.0f} tok/s")
    assert batched >= 4 * single
