"""The GEMM roofline of a decode step (issue 18): how many tokens per second the machine's
matrix multiplies alone allow, measured on the exact shapes of one GPT-2 decode step.

A decode step at batch B multiplies a (B, width) activation by every weight of the model
once: per layer the fused QKV (width -> 3 width), the attention output (width -> width), the
MLP up (width -> 4 width) and down (4 width -> width), then the LM head (width -> vocab).
Each GEMM is timed with every kernel torch has for it on CPU (MKL either operand order,
oneDNN on a prepacked weight) and the fastest counts, with distinct weights per layer as in a
real step. The attention over the cache itself is a batched matrix-vector product that grows
with the position; it is left out, so the figure is an upper bound for short contexts.

    python bench/roofline.py [--batch 1 8 32] [--int8]

bench/engine.py prints each engine figure as a fraction of this bound, in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from lmforge.cpuinfo import cpu_flags

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
    kernels: dict[str, str]  # the fastest kernel of each GEMM


def _quantized(layer: torch.nn.Linear) -> torch.nn.Module:
    with warnings.catch_warnings():
        # The engine's int8 path is the same dynamic quantization, deprecated or not.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        wrapped = torch.nn.Sequential(layer)
        return quantize_dynamic(wrapped, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]


def _kernels(layer: torch.nn.Linear, weights: str) -> dict[str, Callable[[torch.Tensor], object]]:
    """Every way torch can run this layer on CPU: the roofline takes the fastest, so that it
    bounds the engine whichever kernel the engine picks."""
    if weights == "int8":
        return {"int8 dynamic": _quantized(layer)}
    weight, bias = layer.weight.detach(), layer.bias.detach()
    kernels: dict[str, Callable[[torch.Tensor], object]] = {
        "x @ W.T": lambda x: F.linear(x, weight, bias),
        "W @ x.T": lambda x: torch.addmm(bias[:, None], weight, x.t()),
    }
    if torch.backends.mkldnn.is_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 32)
        kernels["oneDNN packed"] = lambda x: torch.ops.mkldnn._linear_pointwise(
            x, packed, bias, "none", [], ""
        )
    return kernels


def _seconds(calls: list[Callable[[], object]], budget_s: float) -> float:
    """The fastest pass over `calls` within about `budget_s` (the machines are shared: the
    fastest pass is the one least disturbed)."""
    with torch.inference_mode():
        for call in calls:
            call()
        best, spent = float("inf"), 0.0
        while spent < budget_s:
            start = time.perf_counter()
            for call in calls:
                call()
            took = time.perf_counter() - start
            best, spent = min(best, took), spent + took
    return best


def measure(batch: int, weights: str = "fp32", budget_s: float = 0.5) -> Roofline:
    """Each GEMM of the step with its own weights per layer, run one after another as the step
    runs them: a step streams 330 MB of fp32 weights, so no layer's weight is still in the
    cache when its turn comes again (one weight called in a loop would be)."""
    torch.manual_seed(0)
    total_s, flop, head_s, kernels = 0.0, 0.0, 0.0, {}
    for name, k, n, times in step_gemms():
        x = torch.randn(batch, k)
        per_kernel: dict[str, list[Callable[[torch.Tensor], object]]] = {}
        for _ in range(times):
            for kernel, call in _kernels(torch.nn.Linear(k, n).eval(), weights).items():
                per_kernel.setdefault(kernel, []).append(call)
        seconds = {
            kernel: _seconds([lambda c=c, x=x: c(x) for c in calls], budget_s)
            for kernel, calls in per_kernel.items()
        }
        kernels[name] = min(seconds, key=lambda kernel: seconds[kernel])
        total_s += seconds[kernels[name]]
        flop += 2.0 * batch * k * n * times
        if name == "lm_head":
            head_s = seconds[kernels[name]]
    return Roofline(
        batch=batch,
        weights=weights,
        gflop_per_step=flop / 1e9,
        gemm_ms_per_step=1000 * total_s,
        gflops=flop / total_s / 1e9,
        tokens_per_s=batch / total_s,
        lm_head_share=head_s / total_s,
        kernels=kernels,
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
            f"{r.gflops:>8.1f} {r.tokens_per_s:>11.0f} {r.lm_head_share:>7.0%}  "
            + ", ".join(f"{name}: {kernel}" for name, kernel in r.kernels.items())
        )


if __name__ == "__main__":
    main()
