"""Our own GPT-2 inference forward over a fixed-slot KV cache: the only serve module that
touches tensors. One call to `step` runs every chunk the scheduler planned (prefills of newly
admitted requests and one decode token per running request) in a single forward, then samples,
scores or pools per request."""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, ModelError
from lmforge.modelio import verify_model_dir
from lmforge.serve.request import Kind, Request, SamplingParams
from lmforge.serve.scheduler import Chunk

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
WEIGHT_FIRST_ROWS = 64
QUANTIZE = ("none", "int8")


@dataclass(frozen=True)
class RunnerConfig:
    device: str = "auto"
    dtype: str = "float32"
    quantize: str = "none"
    kv_slots: int = 32
    max_seq_len: int = 0  # 0: the model's context length
    threads: int = 0  # 0: every core this process may use


@dataclass
class TokenOutput:
    token_id: int
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


@dataclass
class ChunkOutput:
    """What one chunk produced: a sampled token (generate, once its prompt is complete), the
    log-probabilities of its scored tokens (score), pooled state (embed), or an error."""

    token: TokenOutput | None = None
    scores: list[float] = field(default_factory=list)
    embedding: list[float] | None = None
    error: str | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _weights_of(state: dict[str, Any], n_layer: int) -> dict[str, Any]:
    """Strip the `transformer.` prefix that GPT2LMHeadModel saves (the original gpt2 files have
    none) and check that every weight our forward needs is there."""
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    needed = ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]
    for i in range(n_layer):
        for part in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            needed += [f"h.{i}.{part}.weight", f"h.{i}.{part}.bias"]
    if missing := [k for k in needed if k not in state]:
        raise ModelError(f"the weights lack {len(missing)} GPT-2 tensors, e.g. {missing[:3]}")
    return state


def _call(layer: Any, x: Any) -> Any:
    return layer(x)


def _weight_first(layer: Any, x: Any) -> Any:
    import torch

    if x.shape[0] > WEIGHT_FIRST_ROWS:
        return layer(x)
    if layer.bias is None:
        return torch.mm(layer.weight, x.t()).t()
    return torch.addmm(layer.bias[:, None], layer.weight, x.t()).t()


class GPT2Forward:
    """GPT-2 with a slot KV cache. Attention is `scaled_dot_product_attention`: one batched call
    for all decode rows, one call per prefill chunk (each with its own causal offset)."""

    def __init__(self, config: dict[str, Any], state: dict[str, Any], options: RunnerConfig):
        import torch
        from torch import nn

        unsupported = [
            key
            for key in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")
            if config.get(key)
        ]
        if unsupported or config.get("activation_function", "gelu_new") != "gelu_new":
            raise ModelError(
                f"unsupported GPT-2 variant: {unsupported or config.get('activation_function')}"
            )
        self.n_layer = config["n_layer"]
        self.n_head = config["n_head"]
        self.d_model = config["n_embd"]
        self.head_dim = self.d_model // self.n_head
        self.n_positions = config["n_positions"]
        self.vocab_size = config["vocab_size"]
        self.device = torch.device(options.device)
        self.dtype = getattr(torch, options.dtype)
        eps = config.get("layer_norm_epsilon", 1e-5)
        state = _weights_of(state, self.n_layer)

        def linear(prefix: str) -> nn.Linear:
            # HF's Conv1D stores [in, out]; nn.Linear wants [out, in].
            weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
            layer = nn.Linear(weight.shape[0], weight.shape[1])
            layer.weight.data = weight.t().contiguous()
            layer.bias.data = bias.clone()
            return layer

        def norm(prefix: str) -> nn.LayerNorm:
            layer = nn.LayerNorm(self.d_model, eps=eps)
            layer.weight.data = state[f"{prefix}.weight"].clone()
            layer.bias.data = state[f"{prefix}.bias"].clone()
            return layer

        blocks = nn.ModuleList()
        for i in range(self.n_layer):
            block = nn.Module()
            block.ln_1, block.ln_2 = norm(f"h.{i}.ln_1"), norm(f"h.{i}.ln_2")
            block.qkv, block.proj = linear(f"h.{i}.attn.c_attn"), linear(f"h.{i}.attn.c_proj")
            block.fc, block.fc_proj = linear(f"h.{i}.mlp.c_fc"), linear(f"h.{i}.mlp.c_proj")
            blocks.append(block)
        model = nn.Module()
        model.blocks = blocks
        model.ln_f = norm("ln_f")
        model.wte = nn.Embedding.from_pretrained(state["wte.weight"].clone())
        model.wpe = nn.Embedding.from_pretrained(state["wpe.weight"].clone())
        lm_head = nn.Linear(self.d_model, self.vocab_size, bias=False)
        lm_head.weight.data = state["wte.weight"]
        model.lm_head = lm_head
        model.float()
        if options.quantize == "int8":
            with warnings.catch_warnings():
                # PyTorch marks its quantized tensors as deprecated; dynamic int8 linear layers
                # are still its CPU int8 path.
                warnings.simplefilter("ignore")
                from torch.ao.quantization import quantize_dynamic

                model = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        else:
            model.to(device=self.device, dtype=self.dtype)
        model.eval().requires_grad_(False)
        self.model = model
        # On CPU, BLAS runs W @ x.T faster than x @ W.T for the few-row activations of decode
        # steps (measured 15-25% per step, most on the 50257-wide LM head); long prefills are
        # faster the usual way round.
        plain_cpu = self.device.type == "cpu" and options.quantize == "none"
        self.project = _weight_first if plain_cpu else _call
        cache_shape = (
            self.n_layer,
            options.kv_slots,
            self.n_head,
            options.max_seq_len,
            self.head_dim,
        )
        self.k_cache = torch.zeros(cache_shape, device=self.device, dtype=self.dtype)
        self.v_cache = torch.zeros(cache_shape, device=self.device, dtype=self.dtype)

    def hidden(
        self,
        ids: Any,
        positions: Any,
        slots: Any,
        decode_rows: Any,
        decode_slots: tuple[int, ...],
        decode_lengths: Any,
        prefills: list[tuple[int, int, int, int]],
    ) -> Any:
        """Final hidden states [T, d] for the step's T tokens. `decode_rows`: indices of the
        one-token decode rows (None when they are all the rows, in order), whose slots are
        `decode_slots` and whose cache lengths (including this token) are `decode_lengths`;
        `prefills`: (row offset, slot, start, length)."""
        import torch
        from torch.nn.functional import gelu, scaled_dot_product_attention

        m = self.model
        T = ids.shape[0]
        x = m.wte(ids) + m.wpe(positions)
        n_decode = len(decode_slots)
        if n_decode:
            span = int(decode_lengths.max())
            first = decode_slots[0]
            contiguous = decode_slots == tuple(range(first, first + n_decode))
            slot_index = torch.tensor(decode_slots, device=self.device)
            positions_seen = torch.arange(span, device=self.device)[None, :]
            hidden_keys = (positions_seen >= decode_lengths[:, None])[:, None, None, :]
        for layer, block in enumerate(m.blocks):
            h = block.ln_1(x)
            project = self.project
            q, k, v = project(block.qkv, h).view(T, 3, self.n_head, self.head_dim).unbind(1)
            k_cache, v_cache = self.k_cache[layer], self.v_cache[layer]
            k_cache[slots, :, positions] = k
            v_cache[slots, :, positions] = v
            out = q if decode_rows is None else torch.empty_like(q)
            if n_decode:
                if contiguous:
                    keys = k_cache[first : first + n_decode, :, :span]
                    values = v_cache[first : first + n_decode, :, :span]
                else:
                    keys = k_cache[:, :, :span].index_select(0, slot_index)
                    values = v_cache[:, :, :span].index_select(0, slot_index)
                # One query per row: two batched matmuls beat the fused kernel here.
                queries = q if decode_rows is None else q[decode_rows]
                scores = torch.matmul(queries.unsqueeze(2), keys.transpose(-1, -2))
                scores.mul_(self.head_dim**-0.5).masked_fill_(hidden_keys, -math.inf)
                attended = torch.matmul(scores.softmax(dim=-1), values).squeeze(2)
                if decode_rows is None:
                    out = attended
                else:
                    out[decode_rows] = attended
            for offset, slot, start, length in prefills:
                query = q[offset : offset + length].transpose(0, 1).unsqueeze(0)
                keys = k_cache[slot : slot + 1, :, : start + length]
                values = v_cache[slot : slot + 1, :, : start + length]
                if start == 0:
                    attended = scaled_dot_product_attention(query, keys, values, is_causal=True)
                else:
                    seen = torch.arange(start + length, device=self.device)[None, :]
                    upto = torch.arange(start, start + length, device=self.device)[:, None]
                    attended = scaled_dot_product_attention(
                        query, keys, values, attn_mask=seen <= upto
                    )
                out[offset : offset + length] = attended[0].transpose(0, 1)
            x = x + project(block.proj, out.reshape(T, self.d_model))
            hidden = gelu(project(block.fc, block.ln_2(x)), approximate="tanh")
            x = x + project(block.fc_proj, hidden)
        return m.ln_f(x)

    def logits(self, hidden: Any) -> Any:
        # Contiguous rows: argmax and sampling over a transposed result are several times slower.
        return self.project(self.model.lm_head, hidden).float().contiguous()


class Runner:
    """Owns the model, the KV cache and the per-request random generators."""

    def __init__(self, model_dir: Path, options: RunnerConfig | None = None) -> None:
        import torch
        from safetensors.torch import load_file

        options = options or RunnerConfig()
        if options.dtype not in DTYPES:
            raise ConfigError(f"dtype: {options.dtype!r} is not one of {', '.join(DTYPES)}")
        if options.quantize not in QUANTIZE:
            raise ConfigError(f"quantize: {options.quantize!r} is not one of {QUANTIZE}")
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and options.dtype != "float32":
            raise ConfigError(
                f"dtype: {options.dtype} is for CUDA; on CPU use float32 (or --quantize int8)"
            )
        if options.quantize == "int8" and device != "cpu":
            raise ConfigError("quantize: int8 is the CPU path; on CUDA use --dtype bfloat16")
        threads = options.threads or available_cores()
        torch.set_num_threads(threads)
        model_dir = Path(model_dir)
        self.card = verify_model_dir(model_dir)
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "gpt2":
            raise ModelError(
                f"{model_dir} holds a {config.get('model_type')!r} model; serving needs GPT-2"
            )
        max_seq = min(options.max_seq_len or config["n_positions"], config["n_positions"])
        self.options = RunnerConfig(
            device, options.dtype, options.quantize, options.kv_slots, max_seq, threads
        )
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"{model_dir} has no model.safetensors")
        try:
            state = load_file(str(weights))
        except Exception as exc:
            raise ModelError(f"cannot read {weights}: {exc}") from exc
        self.forward = GPT2Forward(config, state, self.options)
        self.eos_id: int | None = config.get("eos_token_id")
        self.vocab_size = self.forward.vocab_size
        self.max_seq_len = max_seq
        self._generators: dict[str, Any] = {}
        self._pooled: dict[str, Any] = {}  # running sums of embed requests split in chunks
        self._torch = torch

    def release(self, request: Request) -> None:
        self._generators.pop(request.request_id, None)
        self._pooled.pop(request.request_id, None)

    def step(self, chunks: list[Chunk]) -> list[ChunkOutput]:
        """One forward over every chunk; one output per chunk, in order."""
        with self._torch.inference_mode():
            return self._outputs(chunks, self.hidden_states(chunks))

    def hidden_states(self, chunks: list[Chunk]) -> Any:
        """Final hidden states [T, d] of every chunk's tokens, concatenated in chunk order;
        writes their keys and values into the requests' slots."""
        torch = self._torch
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        decode_rows: list[int] = []
        decode = []
        prefills = []
        for chunk in chunks:
            offset = len(ids)
            ids += chunk.token_ids
            positions += range(chunk.start, chunk.start + chunk.length)
            slots += [chunk.request.slot] * chunk.length
            if chunk.length == 1 and chunk.start > 0:
                decode_rows.append(offset)
                decode.append((chunk.request.slot, chunk.start + 1))
            else:
                prefills.append((offset, chunk.request.slot, chunk.start, chunk.length))
        # Decode rows sorted by slot so that a compact set of slots is one cache slice.
        order = sorted(range(len(decode)), key=lambda i: decode[i][0])
        rows = [decode_rows[i] for i in order]
        device = self.forward.device
        with torch.inference_mode():
            return self.forward.hidden(
                torch.tensor(ids, device=device),
                torch.tensor(positions, device=device),
                torch.tensor(slots, device=device),
                None if rows == list(range(len(ids))) else torch.tensor(rows, device=device),
                tuple(decode[i][0] for i in order),
                torch.tensor([decode[i][1] for i in order], device=device),
                prefills,
            )

    def _outputs(self, chunks: list[Chunk], hidden: Any) -> list[ChunkOutput]:
        outputs = [ChunkOutput() for _ in chunks]
        sample_rows: list[int] = []
        sample_chunks: list[int] = []
        offset = 0
        for index, chunk in enumerate(chunks):
            request = chunk.request
            end = offset + chunk.length
            if request.kind is Kind.GENERATE and chunk.completes_prompt:
                sample_rows.append(end - 1)
                sample_chunks.append(index)
            elif request.kind is Kind.SCORE:
                outputs[index].scores = self._scores(chunk, hidden[offset:end])
            elif request.kind is Kind.EMBED:
                outputs[index].embedding = self._pool(chunk, hidden[offset:end])
            offset = end
        if sample_rows:
            logits = self.forward.logits(hidden[sample_rows])
            # A row sum is NaN or infinite exactly when some entry is: one pass, not three.
            finite = logits.sum(dim=-1).isfinite().tolist()
            requests = [chunks[i].request for i in sample_chunks]
            tokens = self._sample(requests, logits, finite)
            for index, token, ok in zip(sample_chunks, tokens, finite, strict=True):
                if ok:
                    outputs[index].token = token
                else:
                    outputs[index].error = "the model produced NaN or Inf logits"
        return outputs

    def _scores(self, chunk: Chunk, hidden: Any) -> list[float]:
        """Log-probabilities of the tokens at positions >= score_from that this chunk predicts:
        the hidden state at position p predicts the token at p + 1."""
        request = chunk.request
        first = max(request.score_from, 1) - 1
        last = len(request.prompt_ids) - 2
        lo, hi = max(first, chunk.start), min(last, chunk.start + chunk.length - 1)
        if lo > hi:
            return []
        rows = hidden[lo - chunk.start : hi - chunk.start + 1]
        logprobs = self.forward.logits(rows).log_softmax(dim=-1)
        targets = self._torch.tensor(request.prompt_ids[lo + 1 : hi + 2], device=rows.device)
        return logprobs.gather(1, targets[:, None]).squeeze(1).tolist()

    def _pool(self, chunk: Chunk, hidden: Any) -> list[float] | None:
        """Mean pooling sums over chunks; the chunk that completes the prompt returns it."""
        request = chunk.request
        total = hidden.float().sum(dim=0)
        if request.pooling == "last":
            total = hidden[-1].float()
        elif chunk.start > 0:
            total = total + self._pooled.pop(request.request_id)
        if not chunk.completes_prompt:
            self._pooled[request.request_id] = total
            return None
        if request.pooling == "mean":
            total = total / len(request.prompt_ids)
        return total.tolist()

    def _generator(self, request: Request) -> Any:
        generator = self._generators.get(request.request_id)
        if generator is None:
            generator = self._torch.Generator(device=self.forward.device)
            seed = request.params.seed
            if seed is None:
                generator.seed()
            else:
                # Any integer is a seed; torch takes 64 bits (found by schemathesis: -5e27).
                generator.manual_seed(seed % 2**64)
            self._generators[request.request_id] = generator
        return generator

    def _sample(self, requests: list[Request], logits: Any, finite: list[bool]) -> list:
        raw = logits
        logits = logits.clone() if any(self._adjusts(r) for r in requests) else logits
        for row, request in enumerate(requests):
            if self._adjusts(request):
                self._adjust(request, logits[row])
        tokens = logits.argmax(dim=-1).tolist()
        for row, request in enumerate(requests):
            if request.params.greedy or not finite[row]:
                continue
            tokens[row] = self._draw(logits[row], request.params, self._generator(request))
        outputs = [TokenOutput(token) for token in tokens]
        want_logprobs = [row for row, r in enumerate(requests) if r.params.logprobs]
        if want_logprobs:
            logprobs = raw[want_logprobs].log_softmax(dim=-1)
            for i, row in enumerate(want_logprobs):
                top = logprobs[i].topk(requests[row].params.logprobs)
                outputs[row].logprob = float(logprobs[i, tokens[row]])
                outputs[row].top_logprobs = dict(
                    zip(top.indices.tolist(), top.values.tolist(), strict=True)
                )
        return outputs

    def _adjusts(self, request: Request) -> bool:
        params = request.params
        return params.penalized or (
            len(request.output_ids) < params.min_new_tokens and self.eos_id is not None
        )

    def _adjust(self, request: Request, logits: Any) -> None:
        """Penalties and min_new_tokens, applied in place to one row."""
        torch = self._torch
        params = request.params
        if params.repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(request.all_ids)), device=logits.device)
            values = logits[seen]
            logits[seen] = torch.where(
                values > 0, values / params.repetition_penalty, values * params.repetition_penalty
            )
        if (params.presence_penalty or params.frequency_penalty) and request.output_ids:
            ids, counts = torch.tensor(request.output_ids, device=logits.device).unique(
                return_counts=True
            )
            logits[ids] -= params.presence_penalty + params.frequency_penalty * counts.float()
        if len(request.output_ids) < params.min_new_tokens and self.eos_id is not None:
            logits[self.eos_id] = -math.inf

    def _draw(self, logits: Any, params: SamplingParams, generator: Any) -> int:
        torch = self._torch
        # A tiny temperature (or penalty) overflows the logits to inf, and softmax of inf is
        # NaN: clamp to the largest finite values, which keeps the order and so the choice.
        limit = torch.finfo(logits.dtype)
        logits = torch.nan_to_num(logits / params.temperature, posinf=limit.max, neginf=limit.min)
        if params.top_k:
            kth = logits.topk(min(params.top_k, logits.shape[-1])).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if params.top_p < 1.0:
            ordered, order = logits.sort(descending=True)
            cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
            drop = cumulative - ordered.softmax(dim=-1) >= params.top_p
            # Rounding can put the first token's "mass before it" above a tiny top_p.
            drop[0] = False
            logits = logits.clone()
            logits[order[drop]] = -math.inf
        probs = logits.softmax(dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))
