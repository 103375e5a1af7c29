"""The engine: one background thread owns the model and loops schedule → run → update,
pushing events to each request's stream. Callers use `async for event in engine.generate(...)`
or the blocking `engine.run(...)`; cancelling the caller aborts the request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import EngineError
from lmforge.serve.request import (
    FinishReason,
    InvalidRequest,
    Kind,
    Request,
    SamplingParams,
)
from lmforge.serve.scheduler import Chunk, Overloaded, Scheduler, SchedulerConfig
from lmforge.serve.stream import Event, Stream, deliver
from lmforge.serve.text import Detokenizer, load_tokenizer

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineConfig", "Overloaded"]
# An exception in this many consecutive steps means the model itself is broken.
MAX_FAILED_STEPS = 3


@dataclass(frozen=True)
class EngineConfig:
    device: str = "auto"
    dtype: str = "float32"
    quantize: str = "none"
    threads: int = 0
    kv_slots: int = 32
    max_batch_size: int = 32
    max_batch_tokens: int = 2048
    max_queue: int = 256
    max_seq_len: int = 0


@dataclass
class Stats:
    waiting: int = 0
    running: int = 0
    slots_used: int = 0
    slots_total: int = 0
    steps: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    step_seconds: float = 0.0
    last_step_seconds: float = 0.0
    failed_steps: int = 0


class Engine:
    """Loads the model on its own thread, which then runs the loop once `start()` is called.
    The thread that runs the steps must be the one that built the model: PyTorch's CPU
    kernels measured about 35% slower when weights were prepared on another thread."""

    def __init__(self, model_dir: Path | str, config: EngineConfig | None = None) -> None:
        config = config or EngineConfig()
        self.model_dir = Path(model_dir)
        self.config = config
        self.tokenizer = load_tokenizer(self.model_dir)
        self.stats = Stats(slots_total=config.kv_slots)
        self.dead: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._consecutive_failures = 0
        self._outbox: list[tuple[Stream, Event]] = []  # events of this step, sent after it
        # Called on the engine thread after every step with (step seconds, batch size).
        self.step_observers: list[Any] = []
        self._loaded = threading.Event()
        self._go = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="lmforge-engine", daemon=True)
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error
        self.eos_id = self.runner.eos_id
        self.max_seq_len = self.runner.max_seq_len
        self.scheduler = Scheduler(
            SchedulerConfig(
                config.kv_slots,
                config.max_batch_size,
                config.max_batch_tokens,
                config.max_queue,
                self.max_seq_len,
            )
        )

    def _main(self) -> None:
        from lmforge.serve.runner import Runner, RunnerConfig

        config = self.config
        try:
            self.runner = Runner(
                self.model_dir,
                RunnerConfig(
                    config.device,
                    config.dtype,
                    config.quantize,
                    config.kv_slots,
                    config.max_seq_len,
                    config.threads,
                ),
            )
        except BaseException as exc:
            self._load_error = exc
            return
        finally:
            self._loaded.set()
        self._go.wait()
        if not self._stopping:
            self._loop()

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> Engine:
        self._go.set()
        return self

    @property
    def alive(self) -> bool:
        return self.dead is None and self._go.is_set() and self._thread.is_alive()

    def shutdown(self, drain_seconds: float = 10.0) -> None:
        """Let running and queued requests finish for up to `drain_seconds`, abort the rest,
        then stop the loop."""
        end = time.monotonic() + drain_seconds
        while time.monotonic() < end and self.alive:
            with self._lock:
                if not self.scheduler.has_work:
                    break
            time.sleep(0.01)
        with self._lock:
            for request in [*self.scheduler.running, *self.scheduler.waiting]:
                request.aborted = True
            self._stopping = True
            self._wake.notify_all()
        self._go.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown(drain_seconds=0)

    # submitting ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def submit(self, request: Request, loop: asyncio.AbstractEventLoop | None = None) -> Stream:
        """Queue a request; raises `Overloaded` at once when the queue is full and
        `EngineError` for a request the engine cannot run."""
        if self.dead:
            raise EngineError(f"the engine is dead: {self.dead}")
        if self._stopping:
            raise EngineError("the engine is shutting down")
        if request.kind is Kind.GENERATE and (problems := request.params.problems()):
            raise InvalidRequest("bad sampling parameters: " + "; ".join(problems))
        if not request.prompt_ids:
            raise InvalidRequest("the prompt is empty; give at least one token")
        if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= self.runner.vocab_size:
            raise InvalidRequest(f"token ids must be in [0, {self.runner.vocab_size})")
        if request.kind is Kind.SCORE and not 0 < request.score_from < len(request.prompt_ids):
            raise InvalidRequest("a score request needs a non-empty text after its prompt")
        stream = Stream(loop)
        request.sink = (stream, Detokenizer(self.tokenizer, request.params.stop))
        with self._lock:
            self.scheduler.add(request)
            self._wake.notify()
        return stream

    def abort(self, request: Request) -> None:
        """Abort a queued or running request; its slot is freed at the next step."""
        with self._lock:
            request.aborted = True
            self._wake.notify()

    def request(
        self,
        prompt: str | list[int],
        kind: Kind = Kind.GENERATE,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Request:
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if prompt == "" and kind is Kind.GENERATE and self.eos_id is not None:
            # An empty prompt starts a new document, as GPT-2 generates unconditionally.
            ids = [self.eos_id]
        deadline = time.monotonic() + timeout if timeout else None
        return Request(ids, kind, params or SamplingParams(), deadline=deadline, **fields)

    def events(self, request: Request) -> AsyncIterator[Event]:
        """Submit now (so `Overloaded` and bad requests raise here, before any response has
        started) and return the request's events; leaving early or being cancelled aborts it."""
        stream = self.submit(request, asyncio.get_running_loop())
        return self._follow(request, stream)

    async def _follow(self, request: Request, stream: Stream) -> AsyncIterator[Event]:
        try:
            while True:
                event = await stream.next_async()
                yield event
                if event.finished:
                    return
        finally:
            if not request.finished:
                self.abort(request)

    async def generate(
        self, prompt: str | list[int], params: SamplingParams | None = None, **kw: Any
    ) -> AsyncIterator[Event]:
        async for event in self.events(self.request(prompt, Kind.GENERATE, params, **kw)):
            yield event

    def run(self, request: Request) -> Event:
        """Blocking: submit and wait; one event with the whole text and token ids."""
        stream = self.submit(request)
        merged = Event(request.request_id)
        try:
            while not merged.finished:
                merged.absorb(stream.next_blocking())
            return merged
        finally:
            if not request.finished:
                self.abort(request)

    async def complete(self, request: Request) -> Event:
        """Async: submit and wait; one event with the whole text and token ids."""
        merged = Event(request.request_id)
        async for event in self.events(request):
            merged.absorb(event)
        return merged

    def generate_text(self, prompt: str, params: SamplingParams | None = None, **kw: Any) -> Event:
        return self.run(self.request(prompt, Kind.GENERATE, params, **kw))

    def score(self, prompt: str, continuation: str, **kw: Any) -> list[float]:
        """Log-probabilities of each token of `continuation` after `prompt`."""
        context = self.encode(prompt) if prompt else [self.eos_id or 0]
        ids = context + self.encode(continuation)
        event = self.run(self.request(ids, Kind.SCORE, score_from=len(context), **kw))
        return self._result(event).scores or []

    def embed(self, text: str, pooling: str = "mean", **kw: Any) -> list[float]:
        event = self.run(self.request(text, Kind.EMBED, pooling=pooling, **kw))
        return self._result(event).embedding or []

    @staticmethod
    def _result(event: Event) -> Event:
        if event.finish_reason is not FinishReason.STOP:
            raise EngineError(
                f"the request ended with {event.finish_reason.value}: {event.error or ''}"
            )
        return event

    def snapshot(self) -> Stats:
        with self._lock:
            self.stats.waiting = len(self.scheduler.waiting)
            self.stats.running = len(self.scheduler.running)
            self.stats.slots_used = self.scheduler.slots_used
            return Stats(**vars(self.stats))

    # the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping and not self.scheduler.has_work:
                        return
                    plan = self.scheduler.schedule()
                    if not plan.chunks and not plan.finished:
                        # Wake for new work, or soon enough to time out queued requests.
                        self._wake.wait(timeout=0.05)
                        continue
                    for request in plan.finished:
                        self._emit_final(request)
                if plan.chunks:
                    self._step(plan.chunks)
                self._flush()
        except Exception as exc:  # the thread ends here; /healthz reports the reason
            self._die(f"{type(exc).__name__}: {exc}")

    def _step(self, chunks: list[Chunk]) -> None:
        started = time.perf_counter()
        try:
            outputs: list[Any] = self.runner.step(chunks)
            self._consecutive_failures = 0
        except Exception:
            log.exception(
                "an engine step of %d requests failed; retrying them one by one", len(chunks)
            )
            outputs = self._one_by_one(chunks)
        elapsed = time.perf_counter() - started
        self.stats.steps += 1
        self.stats.step_seconds += elapsed
        self.stats.last_step_seconds = elapsed
        now = time.monotonic()
        with self._lock:
            for chunk, output in zip(chunks, outputs, strict=True):
                if output is None:
                    self.scheduler.finish(chunk.request, FinishReason.ERROR, "internal error")
                    self._emit_final(chunk.request)
                else:
                    self._update(chunk, output, now)
        for observer in self.step_observers:
            observer(elapsed, len(chunks))

    def _one_by_one(self, chunks: list[Chunk]) -> list[Any]:
        """After a failed step: each chunk alone (each writes only its own slot), so that only
        the requests that fail on their own are failed. None marks those. If every chunk fails
        again and again, the model itself is broken: the engine is marked dead."""
        outputs: list[Any] = []
        for chunk in chunks:
            try:
                outputs.append(self.runner.step([chunk])[0])
            except Exception:
                log.exception("request %s failed in the engine", chunk.request.request_id)
                outputs.append(None)
        if any(o is not None for o in outputs):
            self._consecutive_failures = 0
            return outputs
        self._consecutive_failures += 1
        self.stats.failed_steps += 1
        if self._consecutive_failures >= MAX_FAILED_STEPS:
            raise EngineError(f"{MAX_FAILED_STEPS} consecutive steps failed for every request")
        return outputs

    def _update(self, chunk: Chunk, output: Any, now: float) -> None:
        """Apply one chunk's output (the lock is held)."""
        request = chunk.request
        if request.finished:
            return
        request.num_computed += chunk.length
        request.scores += output.scores
        if output.error:
            self.scheduler.finish(request, FinishReason.ERROR, output.error)
            return self._emit_final(request)
        if request.in_prefill:
            return
        if request.kind is not Kind.GENERATE:
            self.scheduler.finish(request, FinishReason.STOP)
            return self._emit_final(request, embedding=output.embedding)
        if chunk.start < len(request.prompt_ids):
            self.stats.prompt_tokens += len(request.prompt_ids)
        token = output.token
        if request.first_token_at is None:
            request.first_token_at = now
        self.stats.output_tokens += 1
        reason = self.scheduler.on_token(request, token.token_id)
        params = request.params
        if (
            token.token_id == self.eos_id
            and not params.ignore_eos
            and len(request.output_ids) > params.min_new_tokens
        ):
            reason = FinishReason.STOP
        stream, detokenizer = request.sink
        text, hit_stop = detokenizer.add(request.output_ids, final=reason is not None)
        if hit_stop:
            reason = FinishReason.STOP
        if reason is not None:
            text += detokenizer.flush()
        event = Event(request.request_id, text=text, token_ids=[token.token_id])
        if token.logprob is not None:
            event.logprobs = [
                {"token_id": token.token_id, "logprob": token.logprob, "top": token.top_logprobs}
            ]
        if reason is None:
            return self._outbox.append((stream, event))
        self.scheduler.finish(request, reason)
        self._emit_final(request, event)

    def _emit_final(self, request: Request, event: Event | None = None, **extra: Any) -> None:
        """Send a finished request's last event and drop its runner state."""
        event = event or Event(request.request_id, **extra)
        event.finish_reason = request.finish_reason
        event.error = request.error
        event.prompt_tokens = len(request.prompt_ids)
        event.output_tokens = len(request.output_ids)
        if request.kind is Kind.SCORE:
            event.scores = request.scores
        if request.scheduled_at is not None:
            event.queued_seconds = request.scheduled_at - request.arrival
        if request.first_token_at is not None:
            event.first_token_seconds = request.first_token_at - request.arrival
        self.runner.release(request)
        self._outbox.append((request.sink[0], event))

    def _flush(self) -> None:
        with self._lock:
            outbox, self._outbox = self._outbox, []
        deliver(outbox)

    def _die(self, reason: str) -> None:
        """Mark the engine dead and fail every request it holds."""
        log.error("the engine is dead: %s", reason)
        self.dead = reason
        with self._lock:
            held = [*self.scheduler.running, *self.scheduler.waiting]
            for request in held:
                self.scheduler.finish(request, FinishReason.ERROR, "the engine stopped")
            for request in held:
                self._emit_final(request)
        self._flush()
