"""Engine benchmark (issue 6): our continuous-batching engine against transformers `generate`
(one request at a time, and static batches) and CTranslate2, in one run on this machine.

Model: distilgpt2-shaped (6 layers, 768 wide, 12 heads, vocab 50257), random weights.
Workload: 64 requests, 32-token prompts, 64 new tokens each, greedy, ignore_eos.

    python bench/engine.py [--out DIR] [--only ours|transformers|ctranslate2] [--ppl-model DIR]

Batched measurements run --repeat times (default 2) and keep the fastest, for every system
alike. Prints a table and writes engine.json; also a profile of one batch-32 decode step and, when a
trained model dir is given with --ppl-model, the perplexity change from int8 weights and from
the bf16 LM head (a row of its own where the CPU has avx512_bf16 or AMX; greedy agreement with
fp32 on the bench model is printed for both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lmforge.threads import DEFAULT_OPENMP

# The OpenMP settings `lmforge serve` runs with (the CLI sets them before torch loads): the
# figures here are that engine's. Measured on this loaded 2-core machine: the decode step at
# batch 32 is 1.6-1.9x faster with OMP_WAIT_POLICY=PASSIVE than with libgomp's spinning default.
os.environ.update({k: v for k, v in DEFAULT_OPENMP.items() if k not in os.environ})

import torch
from roofline import measure as roofline

from lmforge.config.serve import EngineSettings
from lmforge.cpuinfo import cpu_flags, cpu_has_bf16
from lmforge.serve.engine import Engine
from lmforge.serve.request import FinishReason, Kind, SamplingParams

REQUESTS, PROMPT, NEW = 64, 32, 64
VOCAB = 50257


def build_model(path: Path) -> Path:
    if (path / "lmforge.json").exists():
        return path
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=6, n_embd=768, n_head=12, n_positions=1024, vocab_size=VOCAB)
    GPT2LMHeadModel(config).eval().save_pretrained(path)
    write_full_size_tokenizer(path / "tokenizer.json")
    from lmforge.cards import ModelCard

    ModelCard().write(path)  # list every file with its sha256, so the engine verifies the dir
    return path


def write_full_size_tokenizer(path: Path) -> None:
    """A byte-level BPE with GPT-2's 50,257 entries (256 bytes, 50,000 two-byte merges and
    <|endoftext|>), so that converters which check the vocabulary size accept the model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    merges = []
    for a in alphabet:
        for b in alphabet:
            if len(vocab) == VOCAB - 1:
                break
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    vocab["<|endoftext|>"] = VOCAB - 1
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.save(str(path))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, tokens: int, seconds: float, ttft: list[float]) -> dict:
    return {
        "system": name,
        "output_tokens_per_s": tokens / seconds,
        "ttft_p50_ms": 1000 * percentile(ttft, 50),
        "ttft_p99_ms": 1000 * percentile(ttft, 99),
        "seconds": seconds,
        "requests": len(ttft),
    }


def ours(engine: Engine, prompts: list[list[int]], concurrency: int, label: str) -> dict:
    params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)

    async def main() -> tuple[int, list[float]]:
        gate = asyncio.Semaphore(concurrency)
        ttft: list[float] = []

        async def one(ids: list[int]) -> int:
            async with gate:
                start, count = time.perf_counter(), 0
                async for event in engine.events(engine.request(ids, Kind.GENERATE, params)):
                    if not count and event.token_ids:
                        ttft.append(time.perf_counter() - start)
                    count += len(event.token_ids)
                return count

        counts = await asyncio.gather(*(one(p) for p in prompts))
        return sum(counts), ttft

    start = time.perf_counter()
    tokens, ttft = asyncio.run(main())
    return row(f"{label} c={concurrency}", tokens, time.perf_counter() - start, ttft)


def of_roofline(entry: dict, batch: int, quantize: str) -> dict:
    """The entry with the GEMM bound of a batch-`batch` decode step measured right after it
    (bench/roofline.py), and its rate as a fraction of that bound."""
    bound = roofline(batch, "fp32" if quantize == "none" else "int8")
    entry["roofline_tokens_per_s"] = bound.tokens_per_s
    entry["roofline_fraction"] = entry["output_tokens_per_s"] / bound.tokens_per_s
    return entry


def static_batches(name: str, prompts: list[list[int]], batch: int, generate) -> dict:
    """A static-batching server with every request queued at t=0: each batch starts when the
    previous one ends, so a request's TTFT is the time of the batches before its own plus its
    batch's first-token time (measured by a one-token run that is not counted as work)."""
    busy, ttft, tokens = 0.0, [], 0
    for i in range(0, len(prompts), batch):
        group = prompts[i : i + batch]
        probe = time.perf_counter()
        generate(group, 1)
        first = time.perf_counter() - probe
        started = time.perf_counter()
        tokens += sum(len(out) for out in generate(group, NEW))
        ttft += [busy + first] * len(group)
        busy += time.perf_counter() - started
    return row(name, tokens, busy, ttft)


def transformers_generate(model_dir: Path):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        ids = torch.tensor(group)
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                pad_token_id=0,
            )
        return out[:, ids.shape[1] :].tolist()

    return generate


def ctranslate2_generate(model_dir: Path, out: Path, quantization: str):
    import ctranslate2

    converted = out / f"ct2-{quantization}"
    if not converted.exists():
        converter = Path(sys.executable).parent / "ct2-transformers-converter"
        command = [str(converter), "--model", str(model_dir), "--output_dir", str(converted)]
        subprocess.run([*command, "--quantization", quantization], check=True)
    generator = ctranslate2.Generator(
        str(converted),
        device="cpu",
        compute_type=quantization,
        intra_threads=torch.get_num_threads(),
    )
    # CTranslate2 takes token strings: map our ids through its vocabulary.
    vocabulary = json.loads((converted / "vocabulary.json").read_text(encoding="utf-8"))

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        results = generator.generate_batch(
            [[vocabulary[t] for t in p] for p in group],
            max_length=new,
            min_length=new,
            sampling_topk=1,
            include_prompt_in_result=False,
        )
        return [r.sequences_ids[0] for r in results]

    return generate


# Which part of a decode step an op belongs to: GEMMs by their weight's shape (distilgpt2's),
# the rest by the op. The forward is not instrumented itself: the ops and shapes say it all.
GEMM_PARTS = {
    (2304, 768): "qkv",
    (768, 768): "attention out proj",
    (3072, 768): "mlp up",
    (768, 3072): "mlp down",
    (VOCAB, 768): "LM head",
}
GEMM_OPS = ("mkldnn::_linear_pointwise", "aten::addmm", "aten::mm", "aten::linear")
OP_PARTS = {
    "aten::embedding": "embeddings",
    "aten::native_layer_norm": "layer norms",
    "aten::_index_put_impl_": "cache write",
    "aten::index_select": "cache read (copy)",
    "aten::bmm": "attention",
    "aten::_softmax": "attention",
    "aten::masked_fill_": "attention",
    "aten::mul_": "attention",
    "aten::gelu": "mlp gelu",
    "aten::argmax": "sampling",
    "aten::sum": "sampling (finite check)",
}


def part_of(name: str, shapes: list) -> str:
    if name in GEMM_OPS:
        for shape in shapes:
            if tuple(shape) in GEMM_PARTS:
                return GEMM_PARTS[tuple(shape)]
        return f"other GEMM {shapes}"
    if name == "aten::copy_" and shapes and tuple(shapes[0][-1:]) == (VOCAB,):
        return "logits copy"
    return OP_PARTS.get(name, "other ops")


def profile_step(model_dir: Path, prompts: list[list[int]], settings: EngineSettings) -> str:
    """Where the time of a batch-32 decode step goes, at about position 64 (the middle of the
    workload): each op's own time summed by part of the step, and what is left of the wall
    time (Python, the runner building its tensors, waits). Runs the runner directly, on this
    thread, which also built it."""
    from torch.profiler import ProfilerActivity, profile

    from lmforge.serve.request import Request
    from lmforge.serve.runner import Runner
    from lmforge.serve.scheduler import Chunk

    runner = Runner(model_dir, settings)
    params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)
    requests = [Request(p, params=params) for p in prompts[:32]]
    for request in requests:
        request.slot = runner.cache.allocate()

    def step(chunks: list[Chunk]) -> None:
        for chunk, out in zip(chunks, runner.step(chunks), strict=True):
            chunk.request.num_computed += chunk.length
            chunk.request.output_ids.append(out.token.token_id)

    step([Chunk(r, 0, PROMPT) for r in requests])
    for _ in range(NEW // 2 - 4):
        step([Chunk(r, r.num_computed, 1) for r in requests])
    steps = 4
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step([Chunk(r, r.num_computed, 1) for r in requests])
        wall = time.perf_counter() - start
    parts: dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        part = part_of(event.key, event.input_shapes)
        parts[part] = parts.get(part, 0.0) + event.self_cpu_time_total / 1e6
    parts["Python and the rest (wall - ops)"] = max(0.0, wall - sum(parts.values()))
    lines = [f"({steps} steps, {1000 * wall / steps:.1f} ms a step)"]
    for part, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        lines.append(f"  {part:<34} {1000 * seconds / steps:>8.2f} ms  {seconds / wall:>6.1%}")
    return "\n".join(lines)


def greedy_agreement(model_dir: Path, prompts: list[list[int]], settings: EngineSettings) -> dict:
    """How often greedy tokens under `settings` equal the float32 engine's: whole outputs and
    tokens up to the first difference (after one, the texts go separate ways)."""
    params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)

    async def tokens(engine: Engine) -> list[list[int]]:
        async def one(ids: list[int]) -> list[int]:
            events = engine.events(engine.request(ids, Kind.GENERATE, params))
            return [t async for event in events for t in event.token_ids]

        return list(await asyncio.gather(*(one(p) for p in prompts)))

    outputs = []
    for each in (EngineSettings(), settings):
        with Engine(model_dir, each) as engine:
            outputs.append(asyncio.run(tokens(engine)))
    same_prefix = 0
    for a, b in zip(*outputs, strict=True):
        differ = (i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        same_prefix += next(differ, len(a))
    return {
        "requests_identical": sum(a == b for a, b in zip(*outputs, strict=True)) / len(prompts),
        "tokens_before_first_difference": same_prefix / (len(prompts) * NEW),
    }


def perplexity(model_dir: Path, lines: list[str], settings: EngineSettings) -> float:
    import math

    with Engine(model_dir, settings) as engine:
        total, count = 0.0, 0
        for line in lines:
            ids = [engine.eos_id or 0, *engine.encode(line)]
            event = engine.run(engine.request(ids, Kind.SCORE, score_from=1))
            if event.finish_reason is not FinishReason.STOP:
                raise RuntimeError(f"scoring ended with {event.finish_reason}: {event.error}")
            scores = event.scores or []
            total, count = total - sum(scores), count + len(scores)
    return math.exp(total / count)


def perplexity_change(model_dir: Path, lines: list[str], settings: EngineSettings) -> dict:
    """The perplexity of float32 and of `settings`, and the change in percent."""
    base = perplexity(model_dir, lines, EngineSettings())
    other = perplexity(model_dir, lines, settings)
    return {"float32": base, "variant": other, "change_percent": 100 * (other / base - 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/engine"))
    parser.add_argument(
        "--naive-requests",
        type=int,
        default=8,
        help="requests for transformers one-at-a-time (its rate is per request)",
    )
    parser.add_argument(
        "--ppl-model", type=Path, help="a trained model dir for the int8 / bf16-head ppl change"
    )
    parser.add_argument("--ppl-text", type=Path, default=Path("../shared/data/ptb/ptb.test.txt"))
    parser.add_argument("--only", choices=("ours", "transformers", "ctranslate2"))
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each batched measurement; the fastest is kept (the machines are shared)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(args.out / "distilgpt2-random")
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, VOCAB, (REQUESTS, PROMPT), generator=generator).tolist()
    results = []

    def best(measure, repeat: int = args.repeat) -> dict:
        runs = [measure() for _ in range(repeat)]
        return max(runs, key=lambda entry: entry["output_tokens_per_s"])

    def report(entry: dict) -> None:
        results.append(entry)
        print(
            f"{entry['system']:<34} {entry['output_tokens_per_s']:>9.1f} tok/s"
            f"  TTFT p50 {entry['ttft_p50_ms']:>8.1f} ms  p99 {entry['ttft_p99_ms']:>8.1f} ms"
            + (
                f"  {entry['roofline_fraction']:>4.0%} of GEMM roofline"
                if "roofline_fraction" in entry
                else ""
            ),
            flush=True,
        )

    print(cpu_flags())
    openmp = {k: os.environ[k] for k in DEFAULT_OPENMP}
    print(f"threads: {torch.get_num_threads()}  torch {torch.__version__}  {openmp}")
    variants = {"lmforge fp32": EngineSettings(), "lmforge int8": EngineSettings(quantize="int8")}
    if cpu_has_bf16():
        variants["lmforge fp32, bf16 LM head"] = EngineSettings(head_dtype="bfloat16")
    for label, settings in variants.items() if args.only in (None, "ours") else ():
        # The bf16 head is still measured against the fp32 GEMM bound: it is the fp32 model.
        weights = "int8" if settings.quantize == "int8" else "none"
        with Engine(model_dir, settings) as engine:
            ours(engine, prompts[:8], 8, "warm-up")
            report(of_roofline(ours(engine, prompts, 1, label), 1, weights))
            for concurrency in (8, 32):
                entry = best(lambda c=concurrency, n=label: ours(engine, prompts, c, n))
                report(of_roofline(entry, concurrency, weights))
    if args.only in (None, "transformers"):
        hf = transformers_generate(model_dir)
        naive = prompts[: args.naive_requests]
        report(static_batches("(a) transformers 1 at a time", naive, 1, hf))
        for batch in (8, 32):
            name = f"(b) transformers batch {batch}"
            report(best(lambda n=name, b=batch: static_batches(n, prompts, b, hf)))
    if args.only in (None, "ctranslate2"):
        for quantization in ("float32", "int8"):
            ct2 = ctranslate2_generate(model_dir, args.out, quantization)
            for batch in (8, 32):
                name = f"(c) ctranslate2 {quantization} batch {batch}"
                report(best(lambda n=name, b=batch, g=ct2: static_batches(n, prompts, b, g)))
    extra: dict[str, dict] = {}
    if args.only in (None, "ours"):
        print("\nprofile of a batch-32 decode step (lmforge fp32), own time of its ops by part:")
        print(profile_step(model_dir, prompts, EngineSettings(kv_slots=32)))
        for label, settings in list(variants.items())[1:]:
            agreement = greedy_agreement(model_dir, prompts[:16], settings)
            extra[f"{label}: greedy agreement with fp32"] = agreement
            print(f"{label}: greedy agreement with fp32 on the bench model: {agreement}")
    if args.ppl_model:
        lines = [x for x in args.ppl_text.read_text().splitlines() if x.strip()][:200]
        for label, settings in list(variants.items())[1:]:
            change = perplexity_change(args.ppl_model, lines, settings)
            extra[f"{label}: perplexity"] = change
            print(f"{label}: perplexity change against fp32 ({args.ppl_model}): {change}")
    (args.out / "engine.json").write_text(json.dumps({"results": results, **extra}, indent=2))


if __name__ == "__main__":
    main()
