"""Our GPT-2 inference forward, built from a Hugging Face model dir's weights: embeddings,
blocks and the head (the LM head, or a GPT2ForSequenceClassification's `score` head), reading
and writing keys and values through a `SlotKVCache`. Attention: two batched matmuls for all
one-token decode rows, `scaled_dot_product_attention` per prefill chunk (each with its own
causal offset).

Longer than ~300 lines on purpose: reading the weights in HF's layout and the forward that
uses them are one contract (names, shapes, tied or untied head, classifier head); the parity
tests hold them together."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.functional import gelu, scaled_dot_product_attention

from lmforge.errors import ConfigError, ModelError
from lmforge.modelio import verify_model_dir
from lmforge.serve.kv_cache import SlotKVCache
from lmforge.serve.packed import PackedLinear, check_head_dtype, onednn

if TYPE_CHECKING:
    from lmforge.serve.kv_cache import Rows

UNSUPPORTED = ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")
CLASSIFIER = "GPT2ForSequenceClassification"


class Prefill(NamedTuple):
    """A prompt chunk of one step: rows [offset, offset + length) of the step, positions
    [start, start + length) of `slot`."""

    offset: int
    slot: int
    start: int
    length: int


@dataclass(frozen=True)
class Decode:
    """The step's one-token decode rows: their indices among the step's rows (None when they
    are all the rows, in order), how to read their slots, and their cache lengths [B]
    (including this token)."""

    rows: torch.Tensor | None
    slots: Rows
    lengths: torch.Tensor

    @property
    def span(self) -> int:
        return int(self.lengths.max())


class Block(nn.Module):
    def __init__(self, ln_1: nn.LayerNorm, ln_2: nn.LayerNorm, *linear: nn.Linear) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = ln_1, ln_2
        # nn.Linear as read; a PackedLinear or an int8 dynamic linear once converted.
        self.qkv: nn.Module
        self.proj: nn.Module
        self.fc: nn.Module
        self.fc_proj: nn.Module
        self.qkv, self.proj, self.fc, self.fc_proj = linear


class Stack(nn.Module):
    def __init__(self, blocks: list[Block], ln_f: nn.LayerNorm, wte: nn.Embedding) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.ln_f = ln_f
        self.wte = wte


def pick_device(device: str, dtype: str, quantize: str) -> torch.device:
    """The device to run on ("auto": CUDA when present), refusing numerics it lacks."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and dtype != "float32":
        raise ConfigError(f"dtype: {dtype} is for CUDA; on CPU use float32 (or --quantize int8)")
    if quantize == "int8" and device != "cpu":
        raise ConfigError("quantize: int8 is the CPU path; on CUDA use --dtype bfloat16")
    return torch.device(device)


def read_config(model_dir: Path) -> dict[str, object]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "gpt2":
        raise ModelError(
            f"{model_dir} holds a {config.get('model_type')!r} model; serving needs GPT-2"
        )
    unsupported = [key for key in UNSUPPORTED if config.get(key)]
    if unsupported or config.get("activation_function", "gelu_new") != "gelu_new":
        raise ModelError(
            f"unsupported GPT-2 variant: {unsupported or config.get('activation_function')}"
        )
    return cast(dict[str, object], config)


def read_weights(model_dir: Path, n_layer: int) -> dict[str, torch.Tensor]:
    """The weights, without the `transformer.` prefix that GPT2LMHeadModel saves (the original
    gpt2 files have none), checked to hold every tensor our forward needs."""
    path = model_dir / "model.safetensors"
    if not path.is_file():
        raise ModelError(f"{model_dir} has no model.safetensors")
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    needed = ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]
    for i in range(n_layer):
        for part in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            needed += [f"h.{i}.{part}.weight", f"h.{i}.{part}.bias"]
    if missing := [k for k in needed if k not in state]:
        raise ModelError(f"the weights lack {len(missing)} GPT-2 tensors, e.g. {missing[:3]}")
    return state


def output_embedding(state: dict[str, torch.Tensor], config: dict[str, object]) -> torch.Tensor:
    """The LM head's [vocab, d_model] weight: the input embedding when tied (GPT-2's default),
    else the model's own `lm_head.weight`."""
    if config.get("tie_word_embeddings", True):
        return state["wte.weight"]
    head = state.get("lm_head.weight")
    if head is None:
        raise ModelError("the config unties the LM head, but the weights have no lm_head.weight")
    return head


def read_labels(config: dict[str, object]) -> list[str]:
    """A sequence classifier's labels in id order (from `id2label`); empty for a language
    model."""
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or CLASSIFIER not in architectures:
        return []
    id2label = config.get("id2label") or {}
    ids = {str(i) for i in range(len(id2label))} if isinstance(id2label, dict) else None
    if not isinstance(id2label, dict) or not id2label or set(id2label) != ids:
        raise ModelError(f"a {CLASSIFIER} config needs id2label numbering its labels from 0")
    labels = [str(id2label[str(i)]) for i in range(len(id2label))]
    if len(set(labels)) != len(labels):  # answers are keyed by label
        raise ModelError(f"id2label names a label twice: {labels}")
    return labels


def head_weight(
    state: dict[str, torch.Tensor], config: dict[str, object], labels: list[str]
) -> torch.Tensor:
    """The head's [outputs, d_model] weight: a classifier's `score.weight` (one row per
    label, no bias), else the LM head's."""
    if not labels:
        return output_embedding(state, config)
    score = state.get("score.weight")
    if score is None or score.shape[0] != len(labels):
        shape = None if score is None else tuple(score.shape)
        raise ModelError(f"a {len(labels)}-label classifier needs score.weight; found {shape}")
    return score


class GPT2:
    """GPT-2 for inference on `device` in `dtype`, or with int8 linear layers on CPU. A
    sequence classifier (`labels` non-empty) has its `score` head where a language model has
    its LM head: `logits` are then one per label, or the one raw value of a regression head."""

    def __init__(
        self,
        model_dir: Path,
        device: torch.device,
        dtype: str,
        quantize: str,
        unverified: bool = False,
        head_dtype: str = "float32",
    ) -> None:
        check_head_dtype(head_dtype, device, quantize)
        verify_model_dir(model_dir, unverified=unverified)
        config = read_config(model_dir)
        self.n_layer, self.n_head = cast(int, config["n_layer"]), cast(int, config["n_head"])
        self.d_model = cast(int, config["n_embd"])
        self.head_dim = self.d_model // self.n_head
        self.n_positions = cast(int, config["n_positions"])
        self.vocab_size = cast(int, config["vocab_size"])
        self.labels = read_labels(config)
        # transformers' rule: one output and no problem_type is a regression head too.
        self.regression = bool(self.labels) and (
            config.get("problem_type") == "regression" or len(self.labels) == 1
        )
        eos = config.get("eos_token_id")
        self.eos_id = eos if isinstance(eos, int) else None
        self.device = device
        self.dtype: torch.dtype = getattr(torch, dtype)
        eps = cast(float, config.get("layer_norm_epsilon", 1e-5))
        state = read_weights(model_dir, self.n_layer)

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

        def block(i: int) -> Block:
            parts = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
            return Block(
                norm(f"h.{i}.ln_1"), norm(f"h.{i}.ln_2"), *(linear(f"h.{i}.{p}") for p in parts)
            )

        wte = state["wte.weight"]
        embed = nn.Embedding(wte.shape[0], wte.shape[1], _weight=wte.clone(), _freeze=True)
        model = nn.Module()
        model.stack = Stack([block(i) for i in range(self.n_layer)], norm("ln_f"), embed)
        wpe = state["wpe.weight"]
        model.wpe = nn.Embedding(wpe.shape[0], wpe.shape[1], _weight=wpe.clone(), _freeze=True)
        weight = head_weight(state, config, self.labels)
        head = nn.Linear(self.d_model, weight.shape[0], bias=False)
        head.weight.data = weight
        model.head = head
        model.float()
        if quantize == "int8":
            with warnings.catch_warnings():
                # PyTorch marks its quantized tensors as deprecated; dynamic int8 linear layers
                # are still its CPU int8 path.
                warnings.simplefilter("ignore")
                from torch.ao.quantization import quantize_dynamic

                # torch.ao.quantization ships no annotations.
                model = quantize_dynamic(  # type: ignore[no-untyped-call]
                    model, {nn.Linear}, dtype=torch.qint8
                )
        else:
            model.to(device=device, dtype=self.dtype)
        model.eval().requires_grad_(False)
        self.stack = cast(Stack, model.stack)
        self.blocks = [cast(Block, b) for b in self.stack.blocks]
        self.wpe = cast(nn.Embedding, model.wpe)
        self.head = cast(nn.Module, model.head)
        if device.type == "cpu" and quantize == "none" and onednn():
            for block in self.blocks:
                block.qkv, block.proj = PackedLinear(block.qkv), PackedLinear(block.proj)
                block.fc, block.fc_proj = PackedLinear(block.fc), PackedLinear(block.fc_proj)
            self.head = PackedLinear(self.head, getattr(torch, head_dtype))

    def hidden(
        self,
        cache: SlotKVCache,
        ids: torch.Tensor,
        positions: torch.Tensor,
        slots: torch.Tensor,
        decode: Decode | None,
        prefills: list[Prefill],
    ) -> torch.Tensor:
        """Final hidden states [T, d] of the step's T tokens (`ids`, `positions`, `slots`: [T]);
        writes their keys and values into the cache first."""
        T = ids.shape[0]
        x = self.stack.wte(ids) + self.wpe(positions)
        if decode is not None:
            span = decode.span
            positions_seen = torch.arange(span, device=self.device)[None, :]
            hidden_keys = (positions_seen >= decode.lengths[:, None])[:, None, None, :]
        for layer, block in enumerate(self.blocks):
            h = block.ln_1(x)
            q, k, v = block.qkv(h).view(T, 3, self.n_head, self.head_dim).unbind(1)
            cache.write(layer, slots, positions, k, v)
            out = q if decode is not None and decode.rows is None else torch.empty_like(q)
            if decode is not None:
                keys, values = cache.read(layer, decode.slots, span)
                # One query per row: two batched matmuls beat the fused kernel here.
                queries = q if decode.rows is None else q[decode.rows]
                scores = torch.matmul(queries.unsqueeze(2), keys.transpose(-1, -2))
                scores.mul_(self.head_dim**-0.5).masked_fill_(hidden_keys, -math.inf)
                attended = torch.matmul(scores.softmax(dim=-1), values).squeeze(2)
                if decode.rows is None:
                    out = attended
                else:
                    out[decode.rows] = attended
            for offset, slot, start, length in prefills:
                query = q[offset : offset + length].transpose(0, 1).unsqueeze(0)
                keys, values = cache.read(layer, slice(slot, slot + 1), start + length)
                if start == 0:
                    attended = scaled_dot_product_attention(query, keys, values, is_causal=True)
                else:
                    seen = torch.arange(start + length, device=self.device)[None, :]
                    upto = torch.arange(start, start + length, device=self.device)[:, None]
                    attended = scaled_dot_product_attention(
                        query, keys, values, attn_mask=seen <= upto
                    )
                out[offset : offset + length] = attended[0].transpose(0, 1)
            x = x + block.proj(out.reshape(T, self.d_model))
            hidden = gelu(block.fc(block.ln_2(x)), approximate="tanh")
            x = x + block.fc_proj(hidden)
        return cast(torch.Tensor, self.stack.ln_f(x))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head's float32 logits [N, vocab] (or [N, labels] for a classifier) of hidden
        states, one contiguous row each."""
        return cast(torch.Tensor, self.head(hidden)).float()
