"""OpenVINO GenAI `ContinuousBatchingPipeline` (paged KV cache, C++ scheduler) on the model
exported by optimum-intel, fp32 weights and int8 weights (optimum's 8-bit weight compression),
static batches of token-id prompts, greedy, fixed output length. Inference precision is pinned
to f32: on a CPU with bf16 instructions OpenVINO would otherwise compute in bf16, and the rows
compare against our fp32 and int8 engines, whose activations are fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import openvino_genai as genai
from common import Generate, arguments, measure, write


def export(model_dir: Path, out: Path, weights: str) -> Path:
    target = out / f"openvino-{weights}"
    if not (target / "openvino_model.xml").exists():
        from optimum.intel import OVModelForCausalLM
        from transformers import AutoTokenizer

        model = OVModelForCausalLM.from_pretrained(
            model_dir, export=True, load_in_8bit=weights == "int8", compile=False
        )
        model.save_pretrained(target)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(target)
    return target


def pipeline(model: Path, max_batch: int) -> Generate:
    scheduler = genai.SchedulerConfig()
    scheduler.max_num_seqs = max_batch
    scheduler.cache_size = 1  # GB of KV cache: 32 sequences of 96 tokens need ~0.1
    scheduler.enable_prefix_caching = False  # every prompt is new; sharing is not measured here
    pipe = genai.ContinuousBatchingPipeline(
        str(model), scheduler, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        config = genai.GenerationConfig()
        config.max_new_tokens = new
        config.min_new_tokens = new
        config.ignore_eos = True
        config.do_sample = False
        ids = [ov.Tensor(np.array([p], dtype=np.int64)) for p in group]
        results = pipe.generate(ids, [config] * len(group))
        return [list(r.m_generation_ids[0]) for r in results]

    return generate


def main() -> None:
    work, result = arguments()
    model_dir, out = Path(work["model"]), Path(work["models_out"])
    rows = []
    for weights in ("fp32", "int8"):
        generate = pipeline(export(model_dir, out, weights), max(work["batches"]))
        rows += measure(f"openvino-genai {weights}", generate, work)
    write(result, rows, {"openvino-genai": genai.__version__, "openvino": ov.__version__})


if __name__ == "__main__":
    main()
