"""Which requests run in the next engine step. Pure Python: admission under free KV slots,
`max_batch_size` and a per-step token budget; first come first served; running decodes are
planned before any prefill so long prompts never starve them; a bounded waiting queue."""

from __future__ import annotations

import contextlib
import heapq
import time
from collections import deque
from dataclasses import dataclass, field

from lmforge.errors import EngineError
from lmforge.serve.request import FinishReason, Kind, PromptTooLong, Request, Status


class Overloaded(EngineError):
    """The waiting queue is full; the caller should retry later."""


@dataclass(frozen=True)
class SchedulerConfig:
    kv_slots: int = 32
    max_batch_size: int = 32
    max_batch_tokens: int = 2048
    max_queue: int = 256
    max_seq_len: int = 1024

    def problems(self) -> list[str]:
        return [
            f"{name}={getattr(self, name)} must be at least 1"
            for name in ("kv_slots", "max_batch_size", "max_batch_tokens", "max_seq_len")
            if getattr(self, name) < 1
        ] + ([f"max_queue={self.max_queue} must be 0 or more"] if self.max_queue < 0 else [])


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


@dataclass
class Plan:
    chunks: list[Chunk] = field(default_factory=list)
    finished: list[Request] = field(default_factory=list)  # aborted or past their deadline


class Scheduler:
    def __init__(self, config: SchedulerConfig) -> None:
        if problems := config.problems():
            raise EngineError("bad scheduler config: " + "; ".join(problems))
        self.config = config
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._free_slots = list(range(config.kv_slots))

    @property
    def slots_used(self) -> int:
        return self.config.kv_slots - len(self._free_slots)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, request: Request) -> None:
        # Requests that free slots will take at the next step do not count against the bound.
        if len(self.waiting) >= self.config.max_queue + len(self._free_slots):
            raise Overloaded(
                f"the queue is full ({self.config.max_queue} waiting requests)",
                hint="retry shortly",
            )
        needed = request.num_tokens + (request.kind is Kind.GENERATE)
        if needed > self.config.max_seq_len:
            raise PromptTooLong(
                f"the prompt has {request.num_tokens} tokens; the context holds "
                f"{self.config.max_seq_len} including at least one new token"
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
            heapq.heappush(self._free_slots, request.slot)
            request.slot = None
        if request in self.running:
            self.running.remove(request)
        else:
            with contextlib.suppress(ValueError):
                self.waiting.remove(request)

    def on_token(self, request: Request, token_id: int) -> FinishReason | None:
        """Append a sampled token; the budget-based finish (max_new_tokens, context) if any."""
        request.output_ids.append(token_id)
        if len(request.output_ids) >= request.params.max_new_tokens:
            return FinishReason.LENGTH
        if request.num_tokens >= self.config.max_seq_len:
            return FinishReason.LENGTH
        return None

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

        budget = self.config.max_batch_tokens
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
        limit = min(self.config.max_batch_size, self.config.kv_slots)
        while self.waiting and self._free_slots and len(self.running) < limit and budget > 0:
            request = self.waiting.popleft()
            request.slot = heapq.heappop(self._free_slots)
            request.status = Status.RUNNING
            request.scheduled_at = now
            self.running.append(request)
            length = min(request.remaining, budget)
            plan.chunks.append(Chunk(request, 0, length))
            budget -= length
        return plan
