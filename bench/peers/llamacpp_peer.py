"""llama.cpp (llama-cpp-python, built from source) on GGUF f32 and q8_0 made by llama.cpp's own
convert_hf_to_gguf.py, through its batched C API as llama.cpp's `batched` example uses it: one
context with a sequence per prompt, `llama_batch` + `llama_decode` for the prompts and then one
token per sequence per step, greedy sampler. llama-cpp-python's `Llama` class decodes one
sequence at a time, so the ctypes bindings of the C API are called directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llama_cpp as C
from common import Generate, arguments, measure, write

# Two things the converter expects of a GPT-2 checkpoint that ours lacks: a pre-tokenizer
# whose output hash it knows (ours is GPT-2's byte-level BPE with its own merges, so it is told
# it is GPT-2's; the benchmark feeds token ids, the tokenizer is never used), and the old
# `n_ctx` config key, which transformers 5 no longer writes (it is `n_positions`).
CONVERT = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import convert_hf_to_gguf as convert
from conversion.base import TextModel
from conversion.gpt2 import GPT2Model
TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
set_parameters = GPT2Model.set_gguf_parameters
def with_n_ctx(self):
    self.hparams.setdefault("n_ctx", self.hparams["n_positions"])
    set_parameters(self)
GPT2Model.set_gguf_parameters = with_n_ctx
convert.main()
"""


def convert(model_dir: Path, out: Path, outtype: str) -> Path:
    target = out / f"gguf-{outtype}.gguf"
    if not target.exists():
        llama_cpp_src = Path(sys.executable).parents[1] / "llama.cpp"
        command = [sys.executable, "-c", CONVERT, str(llama_cpp_src), str(model_dir)]
        subprocess.run([*command, "--outfile", str(target), "--outtype", outtype], check=True)
    return target


def batched(gguf: Path, max_batch: int, max_len: int, prompt_len: int, threads: int) -> Generate:
    C.llama_backend_init()
    model = C.llama_model_load_from_file(str(gguf).encode(), C.llama_model_default_params())
    params = C.llama_context_default_params()
    params.n_seq_max = max_batch
    params.n_ctx = max_batch * max_len  # each sequence gets its n_ctx / n_seq_max cells
    params.n_batch = params.n_ubatch = max_batch * prompt_len  # all prompts in one decode
    params.n_threads = params.n_threads_batch = threads
    ctx = C.llama_init_from_model(model, params)
    sampler = C.llama_sampler_init_greedy()
    batch = C.llama_batch_init(max_batch * prompt_len, 0, max_batch)

    def decode(entries: list[tuple[int, int, int, bool]]) -> None:
        """entries: (token, position, sequence, wants logits)."""
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.logits[i] = token, pos, logits
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
        batch.n_tokens = len(entries)
        if (status := C.llama_decode(ctx, batch)) != 0:
            raise RuntimeError(f"llama_decode returned {status}")

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        C.llama_memory_clear(C.llama_get_memory(ctx), True)
        entries = [
            (t, pos, seq, pos == len(p) - 1)
            for seq, p in enumerate(group)
            for pos, t in enumerate(p)
        ]
        decode(entries)
        # The batch index of each sequence's last token is where its logits are.
        last = [i for i, entry in enumerate(entries) if entry[3]]
        outputs: list[list[int]] = [[] for _ in group]
        for step in range(new):
            tokens = [C.llama_sampler_sample(sampler, ctx, i) for i in last]
            for out, token in zip(outputs, tokens, strict=True):
                out.append(token)
            if step < new - 1:
                decode([(t, len(group[s]) + step, s, True) for s, t in enumerate(tokens)])
                last = list(range(len(group)))
        return outputs

    return generate


def main() -> None:
    work, result = arguments()
    model_dir, out = Path(work["model"]), Path(work["models_out"])
    out.mkdir(parents=True, exist_ok=True)
    prompt_len = max(len(p) for p in work["prompts"])
    rows = []
    for outtype in ("f32", "q8_0"):
        gguf = convert(model_dir, out, outtype)
        generate = batched(
            gguf, max(work["batches"]), work["max_model_len"], prompt_len, work["threads"]
        )
        rows += measure(f"llama.cpp {outtype}", generate, work)
    write(result, rows, {"llama-cpp-python": C.__version__})


if __name__ == "__main__":
    main()
