"""The engine on tiny random GPT-2 models: parity with transformers, batch invariance,
stop strings, UTF-8-safe streaming, abort, overload, deadlines, score and embed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lmforge.cards import ModelCard
from lmforge.config.serve import EngineSettings
from lmforge.cpuinfo import cpu_has_bf16
from lmforge.errors import ConfigError, EngineError
from lmforge.serve.engine import Engine, Overloaded
from lmforge.serve.packed import check_head_dtype
from lmforge.serve.request import FinishReason, Kind, Request, SamplingParams
from lmforge.serve.runner import Runner
from lmforge.serve.scheduler import Chunk
from lmforge.serve.stream import Event
from lmforge.serve.text import Detokenizer, load_tokenizer
from tests.conftest import build_model_dir

GREEDY = SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True)


def generate_text(engine: Engine, prompt: str, params: SamplingParams) -> Event:
    return engine.run(engine.request(prompt, Kind.GENERATE, params))


def done(event: Event) -> Event:
    assert event.finish_reason is FinishReason.STOP, (event.finish_reason, event.error)
    return event


def score(engine: Engine, prompt: str, continuation: str) -> list[float]:
    """Log-probabilities of each token of `continuation` after `prompt`."""
    context = engine.encode(prompt) if prompt else [engine.eos_id or 0]
    ids = context + engine.encode(continuation)
    event = done(engine.run(engine.request(ids, Kind.SCORE, score_from=len(context))))
    return event.scores or []


def embed(engine: Engine, text: str, pooling: str = "mean") -> list[float]:
    return done(engine.run(engine.request(text, Kind.EMBED, pooling=pooling))).embedding or []


def hf_model(model_dir: Path):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(model_dir).eval()


def assert_parity(model_dir: Path, vocab: int, prompt_len: int = 24, steps: int = 4) -> None:
    """Prefill (whole and chunked, two sequences in one step) and then decode steps give the
    logits transformers gives, within 1e-4."""
    runner = Runner(model_dir, EngineSettings(kv_slots=3, max_seq_len=64))
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (2, prompt_len + steps))
    with torch.no_grad():
        reference = hf_model(model_dir)(ids).logits
    a, b = Request(ids[0].tolist()), Request(ids[1].tolist())
    a.slot, b.slot = 2, 0
    half = prompt_len // 2
    steps_plan = [[Chunk(a, 0, half), Chunk(b, 0, prompt_len)], [Chunk(a, half, half)]]
    steps_plan += [[Chunk(a, p, 1), Chunk(b, p, 1)] for p in range(prompt_len, prompt_len + steps)]
    for plan in steps_plan:
        logits = runner.model.logits(runner.hidden_states(plan))
        row = 0
        for chunk in plan:
            expected = reference[0 if chunk.request is a else 1]
            got = logits[row : row + chunk.length]
            want = expected[chunk.start : chunk.start + chunk.length]
            assert (got - want).abs().max().item() < 1e-4
            row += chunk.length


def test_forward_matches_transformers_on_a_tiny_model(tiny_model: Path) -> None:
    assert_parity(tiny_model, vocab=300)


def test_forward_reads_an_untied_lm_head(tmp_path: Path) -> None:
    """With `tie_word_embeddings: false` the logits come from the model's own lm_head, not the
    input embedding (served from the embedding, such a model's top tokens were wrong)."""
    model_dir = build_model_dir(tmp_path / "untied", tie_word_embeddings=False)
    assert_parity(model_dir, vocab=300)


def test_forward_matches_transformers_on_a_distilgpt2_shaped_model(tmp_path: Path) -> None:
    model_dir = build_model_dir(
        tmp_path / "distil",
        n_layer=6,
        n_embd=768,
        n_head=12,
        n_positions=1024,
        vocab_size=50257,
    )
    assert_parity(model_dir, vocab=50257, prompt_len=16, steps=3)


@pytest.fixture(scope="module")
def engine(tiny_model: Path):
    with Engine(tiny_model, EngineSettings(kv_slots=8, max_batch_size=8)) as running:
        yield running


def test_greedy_generation_matches_transformers_generate(engine: Engine, tiny_model: Path):
    prompt = "the cat sat"
    out = generate_text(engine, prompt, GREEDY)
    ids = torch.tensor([engine.encode(prompt)])
    expected = hf_model(tiny_model).generate(
        ids, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    assert out.token_ids == expected[0, ids.shape[1] :].tolist()
    assert out.finish_reason is FinishReason.LENGTH and out.output_tokens == 12


async def _concurrently(engine: Engine, prompts: list[str], params: list[SamplingParams]):
    async def one(prompt: str, p: SamplingParams) -> list[int]:
        events = engine.events(engine.request(prompt, Kind.GENERATE, p))
        return [t async for e in events for t in e.token_ids]

    return await asyncio.gather(*(one(x, p) for x, p in zip(prompts, params, strict=True)))


@pytest.mark.parametrize("sampled", [False, True])
def test_concurrent_requests_give_the_tokens_they_give_alone(engine: Engine, sampled: bool):
    prompts = [("the cat " * (i + 1)).strip() for i in range(6)]
    params = [
        SamplingParams(max_new_tokens=10 + i, temperature=0.9, top_k=50, top_p=0.9, seed=i)
        if sampled
        else GREEDY
        for i in range(6)
    ]
    together = asyncio.run(_concurrently(engine, prompts, params))
    alone = [generate_text(engine, x, p).token_ids for x, p in zip(prompts, params, strict=True)]
    assert together == alone


def test_penalties_and_min_new_tokens_are_applied(engine: Engine) -> None:
    plain = generate_text(engine, "hello", GREEDY).token_ids
    penalized = generate_text(
        engine, "hello", SamplingParams(max_new_tokens=12, temperature=0, repetition_penalty=5.0)
    ).token_ids
    assert len(set(penalized)) > len(set(plain))
    eos_first = generate_text(engine, "hello", SamplingParams(max_new_tokens=5, min_new_tokens=5))
    assert len(eos_first.token_ids) == 5 and 0 not in eos_first.token_ids[:4]


def test_extreme_sampling_values_never_fail_the_request(engine: Engine) -> None:
    # Found by schemathesis: logits / 1e-300 overflow to inf and softmax turned them to NaN.
    for params in (
        SamplingParams(max_new_tokens=6, min_new_tokens=6, temperature=1e-300, seed=1),
        SamplingParams(max_new_tokens=6, min_new_tokens=6, repetition_penalty=1e-300, seed=1),
        SamplingParams(max_new_tokens=6, min_new_tokens=6, temperature=5.0, top_p=5e-324, seed=1),
        SamplingParams(max_new_tokens=6, min_new_tokens=6, seed=-5193975434741508977138335744),
    ):
        out = generate_text(engine, "hello", params)
        assert out.finish_reason is FinishReason.LENGTH and len(out.token_ids) == 6, params


def test_stop_strings_match_across_token_boundaries(engine: Engine) -> None:
    out = generate_text(engine, "the mat", GREEDY)
    pieces = [engine.tokenizer.decode([t]) for t in out.token_ids]
    # A stop string made of the end of one token and the start of the next.
    cut = next(i for i in range(1, len(pieces)) if len(pieces[i - 1]) > 1 and pieces[i])
    before = "".join(pieces[: cut - 1]) + pieces[cut - 1][:-1]
    stop = pieces[cut - 1][-1] + pieces[cut][0]
    assert stop not in before
    stopped = generate_text(engine, "the mat", SamplingParams(**{**vars(GREEDY), "stop": (stop,)}))
    assert stopped.finish_reason is FinishReason.STOP
    assert stopped.text == before


def test_streaming_never_emits_half_a_character(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    # GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest from 256 on.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]

    def byte_token(b: int) -> int:
        return tokenizer.token_to_id(chr(b) if b in printable else chr(256 + others.index(b)))

    # 漢 as three single-byte tokens, then one more character.
    ids = [byte_token(b) for b in "漢".encode()] + tokenizer.encode("x").ids
    detokenizer = Detokenizer(tokenizer)
    shown = [detokenizer.add(ids[: i + 1])[0] for i in range(len(ids))]
    assert shown == ["", "", "漢", "x"]


def test_abort_frees_the_slot(engine: Engine) -> None:
    async def abandon() -> None:
        params = SamplingParams(max_new_tokens=100, temperature=0, ignore_eos=True)
        async for _ in engine.events(engine.request("the cat", Kind.GENERATE, params)):
            assert engine.snapshot().running == 1
            break

    asyncio.run(abandon())
    for _ in range(100):
        if engine.snapshot().slots_used == 0:
            break
        time.sleep(0.01)
    assert engine.snapshot().slots_used == 0


def test_a_full_queue_raises_overloaded(tiny_model: Path) -> None:
    stopped = Engine(tiny_model, EngineSettings(kv_slots=1, max_queue=2))  # never started
    for _ in range(3):
        stopped.submit(stopped.request("hello"))
    with pytest.raises(Overloaded):
        stopped.submit(stopped.request("hello"))
    stopped.shutdown(drain_seconds=0)


def test_deadlines_end_requests_with_timeout(engine: Engine) -> None:
    params = SamplingParams(max_new_tokens=100, temperature=0, ignore_eos=True)
    out = engine.run(engine.request("hello", params=params, timeout=0.001))
    assert out.finish_reason is FinishReason.TIMEOUT


def test_score_matches_transformers(engine: Engine, tiny_model: Path) -> None:
    prompt, continuation = "the cat", " sat on the mat"
    scores = score(engine, prompt, continuation)
    context, target = engine.encode(prompt), engine.encode(continuation)
    ids = torch.tensor([context + target])
    with torch.no_grad():
        logprobs = hf_model(tiny_model)(ids).logits.log_softmax(-1)[0]
    expected = [logprobs[len(context) - 1 + i, t].item() for i, t in enumerate(target)]
    assert scores == pytest.approx(expected, abs=1e-4)


def test_score_chunks_in_one_step_score_as_they_do_alone(tiny_model: Path) -> None:
    """A step's score chunks share one LM-head call; each still gets its own tokens'
    log-probabilities and top tokens (a request with logprobs 0 gets none) as when it runs
    alone, including a chunk that predicts no scored token."""
    runner = Runner(tiny_model, EngineSettings(kv_slots=4, max_seq_len=64, prefix_cache_mb=0))
    torch.manual_seed(2)
    shapes = [(12, 4, 3), (9, 7, 0), (20, 15, 5), (6, 6, 2)]  # (length, score_from, logprobs)
    requests = []
    for slot, (length, score_from, logprobs) in enumerate(shapes):
        ids = torch.randint(0, 300, (length,)).tolist()
        request = Request(ids, kind=Kind.SCORE, score_from=score_from)
        request.params = SamplingParams(logprobs=logprobs)
        request.slot = slot
        requests.append(request)
    plan = [Chunk(r, 0, len(r.prompt_ids)) for r in requests[:3]] + [Chunk(requests[3], 0, 3)]
    together = runner.step(plan)
    alone = [runner.step([chunk])[0] for chunk in plan]
    assert [len(out.scores) for out in together] == [8, 2, 5, 0]
    for both, single in zip(together, alone, strict=True):
        assert both.scores == pytest.approx(single.scores, abs=1e-5)
        assert [list(top) for top in both.top_scores] == [list(top) for top in single.top_scores]
    assert [len(out.top_scores) for out in together] == [8, 0, 5, 0]
    assert all(len(top) == 5 for top in together[2].top_scores)


def test_embed_matches_transformers_hidden_states(engine: Engine, tiny_model: Path) -> None:
    ids = torch.tensor([engine.encode("hello world, the cat sat")])
    with torch.no_grad():
        hidden = hf_model(tiny_model)(ids, output_hidden_states=True).hidden_states[-1][0]
    assert embed(engine, "hello world, the cat sat") == pytest.approx(
        hidden.mean(0).tolist(), abs=1e-4
    )
    assert embed(engine, "hello world, the cat sat", pooling="last") == pytest.approx(
        hidden[-1].tolist(), abs=1e-4
    )


def test_chunked_prefill_keeps_score_and_embed_exact(tiny_model: Path, engine: Engine) -> None:
    with Engine(tiny_model, EngineSettings(max_batch_tokens=5)) as small_steps:
        text = "hello world, the cat sat on the mat"
        assert embed(small_steps, text) == pytest.approx(embed(engine, text), abs=1e-5)
        expected = score(engine, "the", text)
        assert score(small_steps, "the", text) == pytest.approx(expected, abs=1e-5)


def test_bad_requests_are_refused_with_the_reason(engine: Engine) -> None:
    with pytest.raises(EngineError, match="temperature=-1"):
        engine.submit(engine.request("hi", params=SamplingParams(temperature=-1)))
    with pytest.raises(EngineError, match="context holds 128"):
        engine.submit(engine.request(list(range(1, 200))))
    with pytest.raises(EngineError, match="empty"):
        engine.submit(Request([], Kind.GENERATE))


def test_bad_settings_are_refused_before_loading(tiny_model: Path) -> None:
    settings = EngineSettings(kv_slots=0, max_queue=-1, dtype="float64")
    with pytest.raises(
        ConfigError, match=r"dtype: 'float64' is not one of.*kv_slots: 0.*max_queue"
    ):
        Engine(tiny_model, settings)


def test_nan_logits_fail_only_that_request(tmp_path: Path) -> None:
    model_dir = build_model_dir(tmp_path / "broken")
    weights = load_file(model_dir / "model.safetensors")
    weights["transformer.ln_f.bias"][0] = float("nan")
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    ModelCard().write(model_dir)  # re-made as a model dir with these weights
    with Engine(model_dir) as broken:
        out = generate_text(broken, "hello", GREEDY)
        assert out.finish_reason is FinishReason.ERROR and "NaN" in out.error
        assert broken.alive


def test_int8_generation_stays_close(tiny_model: Path, engine: Engine) -> None:
    with Engine(tiny_model, EngineSettings(quantize="int8")) as int8:
        fp32 = score(engine, "the", " cat sat on the mat")
        quantized = score(int8, "the", " cat sat on the mat")
    assert quantized != fp32
    assert sum(quantized) == pytest.approx(sum(fp32), rel=0.05)


def test_unsupported_models_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    import shutil

    other = shutil.copytree(tiny_model, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    ModelCard().write(other)
    with pytest.raises(Exception, match="'llama' model; serving needs GPT-2"):
        Runner(other)


def test_a_request_that_breaks_a_step_fails_alone(tiny_model: Path) -> None:
    """Fault injection at the runner boundary: any step that holds the poisoned token raises,
    as a kernel would on bad input."""
    with Engine(tiny_model) as engine:
        real_step = engine.runner.step
        poison = engine.encode("mat")[0]

        def step(chunks):
            if any(poison in chunk.token_ids for chunk in chunks):
                raise RuntimeError("kernel failure")
            return real_step(chunks)

        engine.runner.step = step

        async def both():
            good = engine.complete(engine.request("the cat", params=GREEDY))
            bad = engine.complete(engine.request("mat", params=GREEDY))
            return await asyncio.gather(good, bad)

        good, bad = asyncio.run(both())
        assert good.finish_reason is FinishReason.LENGTH and len(good.token_ids) == 12
        assert bad.finish_reason is FinishReason.ERROR
        assert engine.alive


def test_an_engine_whose_every_step_fails_is_marked_dead(tiny_model: Path) -> None:
    with Engine(tiny_model) as engine:

        def step(chunks):
            raise RuntimeError("the device is gone")

        engine.runner.step = step
        for _ in range(3):
            assert generate_text(engine, "the", GREEDY).finish_reason is FinishReason.ERROR
        for _ in range(100):
            if not engine.alive:
                break
            time.sleep(0.01)
        assert not engine.alive and "consecutive steps failed" in engine.dead
        with pytest.raises(EngineError, match="dead"):
            engine.submit(engine.request("the"))


def test_the_bf16_head_is_refused_where_it_does_not_apply() -> None:
    with pytest.raises(ConfigError, match="float32 models on CPU, not cpu with quantize int8"):
        check_head_dtype("bfloat16", torch.device("cpu"), "int8")
    with pytest.raises(ConfigError, match="float32 models on CPU, not cuda"):
        check_head_dtype("bfloat16", torch.device("cuda"), "none")


@pytest.mark.skipif(not cpu_has_bf16(), reason="the bf16 LM head needs avx512_bf16 or AMX")
def test_the_bf16_head_gives_fp32_logits_close_to_the_fp32_head(tiny_model: Path) -> None:
    """Opt-in bf16 head: float32 logits (rounded through bf16 products, so not equal), within
    what bf16's 8-bit mantissa allows; the layers before it stay exact."""
    request = Request(list(range(1, 25)))
    request.slot = 0
    logits = {}
    for head_dtype in ("float32", "bfloat16"):
        runner = Runner(tiny_model, EngineSettings(kv_slots=1, head_dtype=head_dtype))
        logits[head_dtype] = runner.model.logits(runner.hidden_states([Chunk(request, 0, 24)]))
    fp32, bf16 = logits["float32"], logits["bfloat16"]
    assert bf16.dtype == torch.float32 and bf16.is_contiguous()
    error = (bf16 - fp32).abs().max().item()
    assert 0 < error < 0.02 * fp32.abs().max().item()
