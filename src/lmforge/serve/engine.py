"""The engine: one background thread owns the model and loops schedule → run → update,
pushing events to each request's stream. Callers build a request with `request(...)`, then
follow it with `events` (async), `complete` (async, one merged event) or the blocking `run`;
leaving early or being cancelled aborts the request.

Longer than ~300 lines on purpose: the loop and the entry surface share the lock-held state
(the scheduler, the per-request records, the outbox); split apart, that lock would have to be
shared across modules."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.config import declared_problems
from lmforge.config.serve import EngineSettings
from lmforge.errors import ConfigError, EngineError
from lmforge.serve.chat import chat_template
from lmforge.serve.prefix_cache import PrefixStats
from lmforge.serve.request import FinishReason, Kind, Request, SamplingParams, check_runnable
from lmforge.serve.scheduler import Chunk, Overloaded, Scheduler
from lmforge.serve.stream import Event, Stream, deliver, final_event, follow, merge, wait
from lmforge.serve.text import Detokenizer, load_tokenizer

if TYPE_CHECKING:
    from lmforge.serve.runner import ChunkOutput, Runner

log = logging.getLogger(__name__)

__all__ = ["Engine", "Overloaded", "Stats"]
# An exception in this many consecutive steps means the model itself is broken.
MAX_FAILED_STEPS = 3


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
    prefix: PrefixStats = field(default_factory=PrefixStats)  # all zero when it is off


@dataclass
class Tracked:
    """The engine's record of a request it holds: where its events go, and its text."""

    stream: Stream
    detokenizer: Detokenizer
    new_text: str = ""  # text the latest token added

    def reached(self, output_ids: list[int], final: bool) -> bool:
        self.new_text, hit = self.detokenizer.add(output_ids, final)
        if final or hit:  # the request ends here: what was held back is its last text
            self.new_text += self.detokenizer.flush()
        return hit


def scored_logprobs(request: Request) -> list[dict[str, Any]]:
    """A score request's log-probabilities in the shape of a generation's `Event.logprobs`:
    per scored token (`prompt_ids[score_from:]`), its id, log-probability and the top ones."""
    scored = request.prompt_ids[max(request.score_from, 1) :]
    return [
        {"token_id": token, "logprob": logprob, "top": top}
        for token, logprob, top in zip(scored, request.scores, request.top_scores, strict=True)
    ]


class Engine:
    """Loads the model on its own thread, which then runs the loop once `start()` is called.
    The thread that runs the steps must be the one that built the model: PyTorch's CPU
    kernels measured about 35% slower when weights were prepared on another thread."""

    def __init__(self, model_dir: Path | str, config: EngineSettings | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.settings = config or EngineSettings()
        if problems := declared_problems(self.settings):
            raise ConfigError("bad engine settings: " + "; ".join(problems))
        self.tokenizer = load_tokenizer(self.model_dir)
        self.chat_template = chat_template(self.model_dir, self.settings.chat_template)
        self.stats = Stats(slots_total=self.settings.kv_slots)
        self.dead: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._consecutive_failures = 0
        self._tracked: dict[str, Tracked] = {}  # by request id, from submit to the last event
        self._outbox: list[tuple[Stream, Event]] = []  # events of this step, sent after it
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
        self.labels = self.runner.labels  # a classifier's, in id order; empty for an LM
        self.scheduler = Scheduler(self.settings, self.runner.cache, self.max_seq_len, self.eos_id)

    def _main(self) -> None:
        from lmforge.serve.runner import Runner

        try:
            self.runner: Runner = Runner(self.model_dir, self.settings)
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

    # the entry surface ---------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def request(
        self,
        prompt: str | list[int],
        kind: Kind = Kind.GENERATE,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Request:
        """A request for `prompt` (text or token ids); `fields` are Request fields such as
        `score_from` and `pooling`."""
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if prompt == "" and kind is Kind.GENERATE and self.eos_id is not None:
            # An empty prompt starts a new document, as GPT-2 generates unconditionally.
            ids = [self.eos_id]
        deadline = time.monotonic() + timeout if timeout else None
        return Request(ids, kind, params or SamplingParams(), deadline=deadline, **fields)

    def submit(self, request: Request, loop: asyncio.AbstractEventLoop | None = None) -> Stream:
        """Queue a request; raises `Overloaded` at once when the queue is full and
        `EngineError` for a request the engine cannot run."""
        if self.dead:
            raise EngineError(f"the engine is dead: {self.dead}")
        if self._stopping:
            raise EngineError("the engine is shutting down")
        check_runnable(request, self.runner.vocab_size, self.labels)
        stream = Stream(loop)
        with self._lock:
            self.scheduler.add(request)
            self._tracked[request.request_id] = Tracked(
                stream, Detokenizer(self.tokenizer, request.params.stop)
            )
            self._wake.notify()
        return stream

    def abort(self, request: Request) -> None:
        """Abort a queued or running request; its slot is freed at the next step."""
        with self._lock:
            request.aborted = True
            self._wake.notify()

    def events(self, request: Request) -> AsyncIterator[Event]:
        """Submit now (so `Overloaded` and bad requests raise here, before any response has
        started) and return the request's events; leaving early or being cancelled aborts it."""
        stream = self.submit(request, asyncio.get_running_loop())
        return follow(stream, lambda: self._abandon(request))

    async def complete(self, request: Request) -> Event:
        """Async: submit and wait; one event with the whole text and token ids."""
        return await merge(request.request_id, self.events(request))

    def run(self, request: Request) -> Event:
        """Blocking: submit and wait; one event with the whole text and token ids."""
        stream = self.submit(request)
        return wait(request.request_id, stream, lambda: self._abandon(request))

    def _abandon(self, request: Request) -> None:
        if not request.finished:
            self.abort(request)

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
        outputs: list[ChunkOutput | None]
        try:
            outputs = list(self.runner.step(chunks))
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
            if self.runner.cache.prefix is not None:  # a copy: snapshots share what they read
                self.stats.prefix = replace(self.runner.cache.prefix.stats)
            for chunk, output in zip(chunks, outputs, strict=True):
                if output is None:
                    self.scheduler.finish(chunk.request, FinishReason.ERROR, "internal error")
                    self._emit_final(chunk.request)
                else:
                    self._update(chunk, output, now)

    def _one_by_one(self, chunks: list[Chunk]) -> list[ChunkOutput | None]:
        """After a failed step: each chunk alone (each writes only its own slot), so that only
        the requests that fail on their own are failed. None marks those. If every chunk fails
        again and again, the model itself is broken: the engine is marked dead."""
        outputs: list[ChunkOutput | None] = []
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

    def _update(self, chunk: Chunk, output: ChunkOutput, now: float) -> None:
        """Apply one chunk's output (the lock is held); the scheduler says when it is done."""
        request = chunk.request
        if request.finished:
            return
        request.scores += output.scores
        request.top_scores += output.top_scores
        if output.error:
            self.scheduler.finish(request, FinishReason.ERROR, output.error)
            return self._emit_final(request)
        if self.scheduler.on_computed(chunk) is not None:
            return self._emit_final(request, embedding=output.embedding)
        token = output.token
        if request.in_prefill or token is None:  # a generate chunk that ends its prompt has one
            return
        if chunk.start < len(request.prompt_ids):
            self.stats.prompt_tokens += len(request.prompt_ids)
        if request.first_token_at is None:
            request.first_token_at = now
        self.stats.output_tokens += 1
        tracked = self._tracked[request.request_id]
        reason = self.scheduler.on_token(request, token.token_id, tracked)
        event = Event(request.request_id, text=tracked.new_text, token_ids=[token.token_id])
        if token.logprob is not None:
            event.logprobs = [
                {"token_id": token.token_id, "logprob": token.logprob, "top": token.top_logprobs}
            ]
        if reason is None:
            return self._outbox.append((tracked.stream, event))
        self._emit_final(request, event)

    def _emit_final(
        self, request: Request, event: Event | None = None, embedding: list[float] | None = None
    ) -> None:
        """Send a finished request's last event and drop the engine's and runner's state."""
        tracked = self._tracked.pop(request.request_id, None)
        self.runner.release(request)
        if tracked is not None:
            event = event or Event(request.request_id, embedding=embedding)
            if request.top_scores:
                event.logprobs = scored_logprobs(request)
            self._outbox.append((tracked.stream, final_event(request, event)))

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
