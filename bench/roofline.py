"""The GEMM roofline of a decode step (issue 18): how many tokens per second the machine's
matrix multiplies alone allow, measured on the exact shapes of one GPT-2 decode step.

A decode step at batch B multiplies a (B, width) activation by every weight of the model
once: per layer the fused QKV (width -> 3 width), the attention output (width -> width), the
MLP up (width -> 4 width) and down (4 width -> width), then the LM head (width -> vocab).
The attention over the cache itself is a batched matrix-vector product that grows with the
position; it is left out, so the figure is an upper bound for short contexts.

    python bench/roofline.py [--batch 1 8 32] [--int8]

bench/engine.py prints each engine figure as a fraction of this bound, in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from lmforge.bench.machine import cpu_flags

# distilgpt2's shape, the model bench/engine.py builds.
LAYERS, WIDTH, VOCAB = 6, 768, 50257


def step_gemms(
    layers: int = LAYERS, width: int = WIDTH, vocab: int = VOCAB
) -> list[tuple[str, int, int, int]]:
    """(name, input features, output features, times per step) of one decode step."""
    return [
        ("qkv", width, 3 * width, layers),
        ("attn_out", width, width, layers),
        ("mlp_up", width, 4 * width, layers),
        ("mlp_down", 4 * width, width, layers),
        ("lm_head", width, vocab, 1),
    ]


@dataclass(frozen=True)
class Roofline:
    batch: int
    weights: str
    gflop_per_step: float
    gemm_ms_per_step: float
    gflops: float
    tokens_per_s: float
    lm_head_share: float


def _linear(in_features: int, out_features: int, weights: str) -> torch.nn.Module:
    layer = torch.nn.Linear(in_features, out_features).eval()
    if weights == "fp32":
        return layer
    with warnings.catch_warnings():
        # The engine's int8 path is the same dynamic quantization, deprecated or not.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        wrapped = torch.nn.Sequential(layer)
        return quantize_dynamic(wrapped, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]


def _seconds(layer: torch.nn.Module, x: torch.Tensor, budget_s: float) -> float:
    """The fastest of repeated calls within about `budget_s` (the machines are shared: the
    fastest run is the one least disturbed)."""
    with torch.inference_mode():
        for _ in range(3):
            layer(x)
        best, spent = float("inf"), 0.0
        while spent < budget_s:
            start = time.perf_counter()
            layer(x)
            took = time.perf_counter() - start
            best, spent = min(best, took), spent + took
    return best


def measure(batch: int, weights: str = "fp32", budget_s: float = 0.3) -> Roofline:
    torch.manual_seed(0)
    x = torch.randn(batch, WIDTH)
    total_s, flop, head_s = 0.0, 0.0, 0.0
    for name, k, n, times in step_gemms():
        layer = _linear(k, n, weights)
        inputs = x if k == WIDTH else torch.randn(batch, k)
        seconds = _seconds(layer, inputs, budget_s) * times
        total_s += seconds
        flop += 2.0 * batch * k * n * times
        if name == "lm_head":
            head_s = seconds
    return Roofline(
        batch=batch,
        weights=weights,
        gflop_per_step=flop / 1e9,
        gemm_ms_per_step=1000 * total_s,
        gflops=flop / total_s / 1e9,
        tokens_per_s=batch / total_s,
        lm_head_share=head_s / total_s,
    )


def bare_gemm_gflops(size: int = 2048) -> float:
    """The machine's best square fp32 GEMM rate, for scale: decode shapes at small batch are
    matrix-vector products and reach far less."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        F.linear(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--int8", action="store_true", help="also int8 dynamic-quantized weights")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args()
    rows = [measure(b, w) for w in ("fp32", "int8")[: 1 + args.int8] for b in args.batch]
    if args.json:
        print(json.dumps({"cpu": cpu_flags(), "rows": [asdict(r) for r in rows]}))
        return
    print(cpu_flags())
    square = bare_gemm_gflops()
    print(f"threads {torch.get_num_threads()}; square 2048 fp32 GEMM: {square:.0f} GFLOP/s")
    print(
        f"{'weights':<7} {'batch':>5} {'GFLOP/step':>10} {'ms/step':>8} {'GFLOP/s':>8} "
        f"{'tok/s bound':>11} {'LM head':>7}"
    )
    for r in rows:
        print(
            f"{r.weights:<7} {r.batch:>5} {r.gflop_per_step:>10.2f} {r.gemm_ms_per_step:>8.2f} "
            f"{r.gflops:>8.1f} {r.tokens_per_s:>11.0f} {r.lm_head_share:>7.0%}"
        )


if __name__ == "__main__":
    main()
