"""One engine step on the model: assembles the step's batch from the scheduler's chunks
(prefills of newly admitted requests and one decode token per running request), runs one
forward for all of them, then samples, scores, pools or classifies per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmforge.config.serve import EngineSettings
from lmforge.serve import sampling
from lmforge.serve.gpt2 import GPT2, Decode, Prefill, pick_device
from lmforge.serve.kv_cache import SlotKVCache
from lmforge.serve.request import Kind, Request
from lmforge.serve.scheduler import Chunk
from lmforge.threads import apply_threads


@dataclass
class TokenOutput:
    token_id: int
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


@dataclass
class ChunkOutput:
    """What one chunk produced: a sampled token (generate, once its prompt is complete), the
    log-probabilities of its scored tokens (score), pooled state (embed), the label
    probabilities in id order or a regression head's raw value (classify, once its text is
    complete), or an error. A score request that asks for logprobs also gets the most likely
    tokens at each scored position."""

    token: TokenOutput | None = None
    scores: list[float] = field(default_factory=list)
    top_scores: list[dict[int, float]] = field(default_factory=list)
    embedding: list[float] | None = None
    error: str | None = None


@dataclass
class ScoredSpan:
    """The rows of a score chunk that predict scored tokens: `targets` are the tokens that
    the hidden rows from `row` on predict (the state at position p predicts p + 1); `count`
    most likely tokens are reported at each."""

    index: int
    row: int
    targets: list[int]
    count: int


def scored_span(index: int, chunk: Chunk, offset: int) -> ScoredSpan | None:
    """The span of chunk `index` (its first row `offset` in the step) that predicts tokens at
    positions >= its request's score_from, or None when this chunk predicts none of them."""
    request = chunk.request
    first = max(request.score_from, 1) - 1
    last = len(request.prompt_ids) - 2
    lo, hi = max(first, chunk.start), min(last, chunk.start + chunk.length - 1)
    if lo > hi:
        return None
    targets = request.prompt_ids[lo + 1 : hi + 2]
    return ScoredSpan(index, offset + lo - chunk.start, targets, request.params.logprobs)


class Runner:
    """Owns the model, its KV cache and the per-request random generators."""

    def __init__(self, model_dir: Path, settings: EngineSettings | None = None) -> None:
        settings = settings or EngineSettings()
        device = pick_device(settings.device, settings.dtype, settings.quantize)
        apply_threads(settings.threads)
        self.model = GPT2(
            Path(model_dir),
            device,
            settings.dtype,
            settings.quantize,
            settings.unverified,
            settings.head_dtype,
        )
        model = self.model
        self.max_seq_len = min(settings.max_seq_len or model.n_positions, model.n_positions)
        self.cache = SlotKVCache(
            settings.kv_slots,
            self.max_seq_len,
            model.n_layer,
            model.n_head,
            model.head_dim,
            device,
            model.dtype,
            settings.prefix_cache_mb * 2**20,
        )
        self.eos_id = model.eos_id
        self.vocab_size = model.vocab_size
        self.labels = model.labels
        self._generators: dict[str, torch.Generator] = {}
        self._pooled: dict[str, torch.Tensor] = {}  # running sums of embed requests in chunks

    def release(self, request: Request) -> None:
        self._generators.pop(request.request_id, None)
        self._pooled.pop(request.request_id, None)

    def step(self, chunks: list[Chunk]) -> list[ChunkOutput]:
        """One forward over every chunk; one output per chunk, in order. Each prompt that
        this step completes is offered to the prefix cache."""
        with torch.inference_mode():
            hidden = self.hidden_states(chunks)
            for chunk in chunks:
                if chunk.completes_prompt and chunk.start < len(chunk.request.prompt_ids):
                    self.cache.store_prefix(chunk.slot, chunk.request.prompt_ids)
            return self._outputs(chunks, hidden)

    def hidden_states(self, chunks: list[Chunk]) -> torch.Tensor:
        """Final hidden states [T, d] of every chunk's tokens, concatenated in chunk order;
        writes their keys and values into the requests' slots."""
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        decodes: list[tuple[int, int, int]] = []  # (slot, cache length, row)
        prefills: list[Prefill] = []
        for chunk in chunks:
            slot, offset = chunk.slot, len(ids)
            ids += chunk.token_ids
            positions += range(chunk.start, chunk.start + chunk.length)
            slots += [slot] * chunk.length
            if chunk.length == 1 and chunk.start > 0:
                decodes.append((slot, chunk.start + 1, offset))
            else:
                prefills.append(Prefill(offset, slot, chunk.start, chunk.length))
        # Decode rows sorted by slot so that a compact set of slots is one cache slice.
        decodes.sort()
        device = self.model.device
        decode = None
        if decodes:
            rows = [row for _, _, row in decodes]
            decode = Decode(
                None if rows == list(range(len(ids))) else torch.tensor(rows, device=device),
                self.cache.rows([slot for slot, _, _ in decodes]),
                torch.tensor([length for _, length, _ in decodes], device=device),
            )
        with torch.inference_mode():
            return self.model.hidden(
                self.cache,
                torch.tensor(ids, device=device),
                torch.tensor(positions, device=device),
                torch.tensor(slots, device=device),
                decode,
                prefills,
            )

    def _outputs(self, chunks: list[Chunk], hidden: torch.Tensor) -> list[ChunkOutput]:
        outputs = [ChunkOutput() for _ in chunks]
        sampled: list[tuple[int, int]] = []  # (chunk index, row of its last token)
        classified: list[tuple[int, int]] = []
        scored: list[ScoredSpan] = []
        offset = 0
        for index, chunk in enumerate(chunks):
            request, end = chunk.request, offset + chunk.length
            if request.kind is Kind.GENERATE and chunk.completes_prompt:
                sampled.append((index, end - 1))
            elif request.kind is Kind.SCORE:
                span = scored_span(index, chunk, offset)
                if span is not None:
                    scored.append(span)
            elif request.kind is Kind.EMBED:
                outputs[index].embedding = self._pool(chunk, hidden[offset:end])
            elif request.kind is Kind.CLASSIFY and chunk.completes_prompt:
                classified.append((index, end - 1))
            offset = end
        if classified:
            self._classify(outputs, classified, hidden)
        if scored:
            self._score(outputs, scored, hidden)
        if sampled:
            logits = self.model.logits(hidden[[row for _, row in sampled]])
            requests = [chunks[index].request for index, _ in sampled]
            tokens = self._sample(requests, logits)
            for (index, _), token in zip(sampled, tokens, strict=True):
                if token is None:
                    outputs[index].error = "the model produced NaN or Inf logits"
                else:
                    outputs[index].token = token
        return outputs

    def _classify(
        self, outputs: list[ChunkOutput], rows: list[tuple[int, int]], hidden: torch.Tensor
    ) -> None:
        """The classification head on each text's last token, as GPT2ForSequenceClassification
        pools it: a softmax over the labels per row (a regression head's raw value), one head
        call for the step."""
        logits = self.model.logits(hidden[[row for _, row in rows]])
        finite = sampling.finite_rows(logits)
        outputs_of = logits if self.model.regression else logits.softmax(dim=-1)
        probabilities: list[list[float]] = outputs_of.tolist()
        for (index, _), ok, row in zip(rows, finite, probabilities, strict=True):
            if ok:
                outputs[index].scores = row
            else:
                outputs[index].error = "the model produced NaN or Inf logits"

    def _score(
        self, outputs: list[ChunkOutput], spans: list[ScoredSpan], hidden: torch.Tensor
    ) -> None:
        """Log-probabilities of every span's tokens, and the `params.logprobs` most likely
        tokens at each position of the spans that ask for them, from one LM-head call for the
        whole step: the head's weights are the largest read of a step, and zero-shot
        classification scores ten short label rows at once."""
        rows = torch.cat([torch.arange(s.row, s.row + len(s.targets)) for s in spans])
        logits = self.model.logits(hidden[rows.to(hidden.device)])
        targets = [token for span in spans for token in span.targets]
        scores = sampling.token_logprobs(logits, torch.tensor(targets, device=logits.device))
        counts = [span.count for span in spans for _ in span.targets]
        want = [row for row, count in enumerate(counts) if count]
        top: list[dict[int, float]] = []
        if want:
            picked = sampling.top_logprobs(
                logits[want], [targets[row] for row in want], [counts[row] for row in want]
            )
            top = [ranked for _, ranked in picked]
        tops, first = iter(top), 0
        for span in spans:
            count = len(span.targets)
            outputs[span.index].scores = scores[first : first + count]
            if span.count:
                outputs[span.index].top_scores = [next(tops) for _ in range(count)]
            first += count

    def _pool(self, chunk: Chunk, hidden: torch.Tensor) -> list[float] | None:
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
        return [float(x) for x in total.tolist()]

    def _sample(self, requests: list[Request], logits: torch.Tensor) -> list[TokenOutput | None]:
        """One token per row of [N, vocab]; None for a row that is not finite."""
        finite = sampling.finite_rows(logits)
        raw = logits
        masked = [r.needs_more_tokens and self.eos_id is not None for r in requests]
        adjusts = [r.params.penalized or mask for r, mask in zip(requests, masked, strict=True)]
        logits = logits.clone() if any(adjusts) else logits
        for row, request in enumerate(requests):
            if request.params.penalized:
                sampling.penalize(logits[row], request.params, request.all_ids, request.output_ids)
            if masked[row] and self.eos_id is not None:
                sampling.forbid(logits[row], self.eos_id)
        tokens: list[int] = logits.argmax(dim=-1).tolist()
        for row, request in enumerate(requests):
            if not request.params.greedy and finite[row]:
                tokens[row] = sampling.draw(logits[row], request.params, self._generator(request))
        outputs = [TokenOutput(token) for token in tokens]
        want = [row for row, r in enumerate(requests) if r.params.logprobs]
        if want:
            counts = [requests[row].params.logprobs for row in want]
            picked = sampling.top_logprobs(raw[want], [tokens[row] for row in want], counts)
            for row, (logprob, top) in zip(want, picked, strict=True):
                outputs[row].logprob, outputs[row].top_logprobs = logprob, top
        return [out if ok else None for out, ok in zip(outputs, finite, strict=True)]

    def _generator(self, request: Request) -> torch.Generator:
        generator = self._generators.get(request.request_id)
        if generator is None:
            generator = sampling.generator_for(request.params.seed, self.model.device)
            self._generators[request.request_id] = generator
        return generator
