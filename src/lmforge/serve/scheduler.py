"""Which requests run in the next engine step, and when each one is finished. Pure Python:
admission under free KV slots, `max_batch_size` and a per-step token budget; first come first
served; running decodes are planned before any prefill so long prompts never starve them; a
bounded waiting queue. An admitted request starts after the longest prefix of its prompt that
the KV cache already holds. Every finish (end-of-text, stop string, length, abort, deadline,
error) is decided and recorded here, with its reason."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from lmforge.config.serve import EngineSettings
from lmforge.errors import EngineError
from lmforge.serve.kv_cache import SlotTable
from lmforge.serve.request import FinishReason, Kind, PromptTooLong, Request, Status


class Overloaded(EngineError):
    """The waiting queue is full; the caller should retry later."""


class StopStrings(Protocol):
    def reached(self, output_ids: list[int], final: bool) -> bool:
        """Whether the text of `output_ids` reaches a stop string; `final`: no more tokens
        will follow, so an unfinished character at the end is text too."""
        ...


@dataclass(frozen=True)
class Chunk:
    """Run `length` tokens of `request`, starting at position `start`, in this step."""

    request: Request
    start: int
    length: int

    @property
    def token_ids(self) -> list[int]:
        return self.request.all_ids[self.start : self.start + self.length]

    @property
    def completes_prompt(self) -> bool:
        return self.start + self.length >= len(self.request.prompt_ids)

    @property
    def slot(self) -> int:
        if self.request.slot is None:
            raise EngineError(f"request {self.request.request_id} is planned without a KV slot")
        return self.request.slot


@dataclass
class Plan:
    chunks: list[Chunk] = field(default_factory=list)
    finished: list[Request] = field(default_factory=list)  # aborted or past their deadline


class Scheduler:
    """Plans steps under `settings`, holding sequences of at most `max_seq_len` tokens in the
    slots of `kv`; `eos_id` is the model's end-of-text token (None: it has none)."""

    def __init__(
        self, settings: EngineSettings, kv: SlotTable, max_seq_len: int, eos_id: int | None
    ) -> None:
        self.settings = settings
        self.kv = kv
        self.max_seq_len = max_seq_len
        self.eos_id = eos_id
        self.batch_limit = min(settings.max_batch_size or kv.capacity, kv.capacity)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    @property
    def slots_used(self) -> int:
        return self.kv.used

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, request: Request) -> None:
        # Requests that free slots will take at the next step do not count against the bound.
        if len(self.waiting) >= self.settings.max_queue + self.kv.free:
            raise Overloaded(
                f"the queue is full ({self.settings.max_queue} waiting requests)",
                hint="retry shortly",
            )
        needed = request.num_tokens + (request.kind is Kind.GENERATE)
        if needed > self.max_seq_len:
            raise PromptTooLong(
                f"the prompt has {request.num_tokens} tokens; the context holds "
                f"{self.max_seq_len} including at least one new token"
            )
        self.waiting.append(request)

    def finish(self, request: Request, reason: FinishReason, error: str | None = None) -> None:
        """Mark a request done and give its slot back (idempotent)."""
        if request.finished:
            return
        request.status = Status.FINISHED
        request.finish_reason = reason
        request.error = error
        if request.slot is not None:
            self.kv.release(request.slot)
            request.slot = None
        if request in self.running:
            self.running.remove(request)
        else:
            with contextlib.suppress(ValueError):
                self.waiting.remove(request)

    def on_computed(self, chunk: Chunk) -> FinishReason | None:
        """Count a chunk's tokens as cached; a score, embed, classify or prefill request is
        done (STOP) once its whole prompt is."""
        request = chunk.request
        request.num_computed += chunk.length
        if request.kind is Kind.GENERATE or request.in_prefill:
            return None
        self.finish(request, FinishReason.STOP)
        return FinishReason.STOP

    def on_token(
        self, request: Request, token_id: int, stops: StopStrings | None = None
    ) -> FinishReason | None:
        """Append a sampled token and finish the request if it is done: STOP at end-of-text
        once min_new_tokens are out (unless ignore_eos) or when its text reaches a stop
        string, else LENGTH at max_new_tokens or the end of the context."""
        params = request.params
        ends_text = (
            token_id == self.eos_id and not params.ignore_eos and not request.needs_more_tokens
        )
        request.output_ids.append(token_id)
        reason = None
        full = len(request.output_ids) >= params.max_new_tokens
        if full or request.num_tokens >= self.max_seq_len:
            reason = FinishReason.LENGTH
        if ends_text:
            reason = FinishReason.STOP
        # The text is read last: whether this is the final token decides how it is decoded.
        if stops is not None and stops.reached(request.output_ids, final=reason is not None):
            reason = FinishReason.STOP
        if reason is not None:
            self.finish(request, reason)
        return reason

    def schedule(self, now: float | None = None) -> Plan:
        now = time.monotonic() if now is None else now
        plan = Plan()
        for request in [*self.running, *self.waiting]:
            if request.aborted:
                self.finish(request, FinishReason.ABORT)
                plan.finished.append(request)
            elif request.deadline is not None and now >= request.deadline:
                self.finish(request, FinishReason.TIMEOUT, "the request passed its deadline")
                plan.finished.append(request)

        budget = self.settings.max_batch_tokens
        decoding = [r for r in self.running if not r.in_prefill]
        prefilling = [r for r in self.running if r.in_prefill]
        for request in decoding:
            if budget == 0:
                break
            plan.chunks.append(Chunk(request, request.num_computed, 1))
            budget -= 1
        for request in prefilling:
            if budget == 0:
                break
            length = min(request.remaining, budget)
            plan.chunks.append(Chunk(request, request.num_computed, length))
            budget -= length
        while self.waiting and self.kv.free and len(self.running) < self.batch_limit and budget:
            request = self.waiting.popleft()
            request.slot = self.kv.allocate()
            request.num_computed = self.kv.load_prefix(
                request.slot, request.prompt_ids, request.reusable_prefix
            )
            request.status = Status.RUNNING
            request.scheduled_at = now
            self.running.append(request)
            length = min(request.remaining, budget)
            plan.chunks.append(Chunk(request, request.num_computed, length))
            budget -= length
        return plan
