"""What evaluation asks of a model, batched: log-probabilities of continuations, pooled
hidden states, greedy generation and a fine-tuned head's outputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmforge.cards import ModelCard
from lmforge.errors import ModelError


@dataclass
class LoadedModel:
    """A model under evaluation: `kind` is "lm" (causal LM) or "classifier" (fine-tuned
    GPT2ForSequenceClassification with its own labels)."""

    ref: str
    model: Any
    tokenizer: Any
    card: ModelCard | None
    kind: str

    @property
    def positions(self) -> int:
        return int(self.model.config.n_positions)

    @property
    def sha256(self) -> str | None:
        return self.card.weights_sha256 if self.card else None

    @property
    def labels(self) -> list[str]:
        config = self.model.config
        return [config.id2label[i] for i in range(config.num_labels)]

    def require_lm(self, task: str) -> None:
        if self.kind != "lm":
            raise ModelError(
                f"task {task} needs a language model, and {self.ref} is a fine-tuned classifier"
            )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def load_for_eval(ref: str, unverified: bool = False) -> LoadedModel:
    from transformers import GPT2ForSequenceClassification

    from lmforge.registry.resolve import open_model

    model, tokenizer, card = open_model(ref, kind="auto", unverified=unverified)
    model.eval()
    classifier = isinstance(model, GPT2ForSequenceClassification)
    return LoadedModel(ref, model, tokenizer, card, "classifier" if classifier else "lm")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _device(model: Any) -> torch.device:
    parameter: torch.Tensor = next(model.parameters())
    return parameter.device


@torch.no_grad()
def continuation_logprobs(
    lm: LoadedModel, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 16
) -> list[float]:
    """Sum of log P(continuation | context) over each pair's continuation tokens. Contexts are
    cut from the left to fit the model's positions (the continuation always fits whole)."""
    positions = lm.positions
    device = _device(lm.model)
    out: list[float] = []
    for chunk in _chunks(pairs, batch_size):
        rows = []
        for context, continuation in chunk:
            if not continuation:
                raise ModelError("cannot score an empty continuation")
            if len(continuation) >= positions:
                raise ModelError(
                    f"a continuation of {len(continuation)} tokens does not fit "
                    f"{lm.ref}'s {positions} positions"
                )
            keep = positions - len(continuation)
            rows.append((context[-keep:] if context else [], continuation))
        width = max(len(c) + len(t) for c, t in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (context, continuation) in enumerate(rows):
            sequence = context + continuation
            ids[i, : len(sequence)] = torch.tensor(sequence)
            mask[i, : len(sequence)] = 1
        logits = lm.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for i, (context, continuation) in enumerate(rows):
            # The token at position p is predicted by the logits at p - 1; a continuation with
            # no context starts at position 1 (its first token has nothing to condition on).
            start = max(len(context), 1)
            targets = torch.tensor((context + continuation)[start:])
            picked = logprobs[i, start - 1 : start - 1 + len(targets)].gather(
                1, targets.unsqueeze(1)
            )
            out.append(float(picked.sum()))
    return out


@torch.no_grad()
def pooled_embeddings(
    lm: LoadedModel, texts: Sequence[str], pooling: str = "mean", batch_size: int = 32
) -> np.ndarray:
    """Unit-length sentence vectors from the last hidden layer: the mean over the text's
    tokens, or the last token's state."""
    device = _device(lm.model)
    vectors = []
    for chunk in _chunks(texts, batch_size):
        encoded = lm.tokenizer(
            list(chunk),
            padding=True,
            truncation=True,
            max_length=lm.positions,
            return_tensors="pt",
            add_special_tokens=False,
        ).to(device)
        hidden = lm.model.transformer(**encoded).last_hidden_state.float()
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        if pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        else:
            last = encoded["attention_mask"].sum(1) - 1
            pooled = hidden[torch.arange(len(chunk)), last.clamp(min=0)]
        vectors.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
    return np.concatenate(vectors)


@torch.no_grad()
def greedy_continuations(
    lm: LoadedModel,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int = 8,
    **generate_options: Any,
) -> list[list[int]]:
    """Greedy continuations (token ids, without the prompt) of left-padded prompts."""
    device = _device(lm.model)
    pad = lm.tokenizer.pad_token_id
    out: list[list[int]] = []
    for chunk in _chunks(prompts, batch_size):
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, prompt in enumerate(chunk):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            mask[i, width - len(prompt) :] = 1
        generated = lm.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            **generate_options,
        )
        out += [row[width:].tolist() for row in generated.cpu()]
    return out


@torch.no_grad()
@torch.no_grad()
def head_outputs(lm: LoadedModel, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """[texts, outputs] logits of a fine-tuned head (a classifier's or a matcher's) over texts
    already in their task form (`prompts.task_text`, `prompts.pair_text`); a text too long
    keeps its end, as in training and serving."""
    device = _device(lm.model)
    pad = lm.model.config.pad_token_id or 0
    out = []
    for chunk in _chunks(texts, batch_size):
        encoded = lm.tokenizer(list(chunk), add_special_tokens=False)["input_ids"]
        rows = [ids[-lm.positions :] for ids in encoded]
        width = max(map(len, rows))
        ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows], device=device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        logits = lm.model(input_ids=ids, attention_mask=mask.to(device)).logits
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of [N, outputs] logits."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
    return probabilities


@torch.no_grad()
def greedy_tokens(lm: LoadedModel, prompts: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, steps] greedy tokens after equal-length prompts [B, P], never stopping at
    <|endoftext|> (training text crosses document ends, and so must its reproduction). Each
    step reruns the whole window: short windows, and no dependence on the KV-cache API,
    which transformers renamed between major versions."""
    device = _device(lm.model)
    sequence = prompts.to(device)
    for _ in range(steps):
        logits = lm.model(input_ids=sequence, attention_mask=torch.ones_like(sequence)).logits
        chosen = logits[:, -1].argmax(-1, keepdim=True)
        sequence = torch.cat([sequence, chosen], dim=1)
    return sequence[:, prompts.shape[1] :].cpu()
