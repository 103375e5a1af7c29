"""CTranslate2 float32 and int8, run as bench/engine.py runs it: the model converted by
ct2-transformers-converter, `Generator.generate_batch` on static batches, greedy (top-k 1),
fixed output length, intra-op threads = torch's default thread count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ctranslate2
import torch
from common import Generate, arguments, measure, write


def generator(model_dir: Path, out: Path, quantization: str) -> Generate:
    converted = out / f"ct2-{quantization}"
    if not converted.exists():
        converter = Path(sys.executable).parent / "ct2-transformers-converter"
        command = [str(converter), "--model", str(model_dir), "--output_dir", str(converted)]
        subprocess.run([*command, "--quantization", quantization], check=True)
    engine = ctranslate2.Generator(
        str(converted),
        device="cpu",
        compute_type=quantization,
        intra_threads=torch.get_num_threads(),
    )
    # CTranslate2 takes token strings: map our ids through its vocabulary.
    vocabulary = json.loads((converted / "vocabulary.json").read_text(encoding="utf-8"))

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        results = engine.generate_batch(
            [[vocabulary[t] for t in p] for p in group],
            max_length=new,
            min_length=new,
            sampling_topk=1,
            include_prompt_in_result=False,
        )
        return [r.sequences_ids[0] for r in results]

    return generate


def main() -> None:
    work, result = arguments()
    model_dir, out = Path(work["model"]), Path(work["models_out"])
    rows = []
    for quantization in ("float32", "int8"):
        rows += measure(
            f"ctranslate2 {quantization}", generator(model_dir, out, quantization), work
        )
    write(result, rows, {"ctranslate2": ctranslate2.__version__})


if __name__ == "__main__":
    main()
