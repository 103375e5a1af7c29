"""Request state and sampling parameters: what a caller asked for and how far it has got.
Pure Python (no torch), so the scheduler can be tested with fabricated runner outputs."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lmforge.errors import EngineError

# Stop strings are matched on the engine thread at every token, so their number and length
# bound what each token costs there. OpenAI allows 4; a stop string is a marker or a phrase.
MAX_STOPS = 16
MAX_STOP_CHARS = 64


class InvalidRequest(EngineError):
    """A request the engine cannot run as given (the caller's mistake)."""


class PromptTooLong(InvalidRequest):
    """The prompt leaves no room in the model's context."""


class ContextExceeded(PromptTooLong):
    """The prompt and the new tokens asked for do not fit the model's context."""


def new_token_budget(
    requested: int | None, default: int, prompt_tokens: int, context: int, cap: int
) -> int:
    """New tokens for one prompt of `prompt_tokens`: `requested` (up to the server's `cap`)
    when the context holds it with the prompt, else `ContextExceeded` naming both numbers
    (as vLLM answers); none requested: `default`, less when the context has less room."""
    if requested is None:
        return max(1, min(default, cap, context - prompt_tokens))
    asked = min(requested, cap)
    if prompt_tokens + asked > context:
        capped = (
            f" (max_tokens {requested} capped by the server to {cap})" if asked < requested else ""
        )
        raise ContextExceeded(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + asked} tokens ({prompt_tokens} in the prompt, {asked} in the "
            f"completion{capped}). Please reduce the length of the prompt or the completion, "
            "or ask for truncate_prompt_tokens."
        )
    return asked


class Kind(StrEnum):
    GENERATE = "generate"
    SCORE = "score"
    EMBED = "embed"
    CLASSIFY = "classify"  # the classification head on the last token's final state
    PREFILL = "prefill"  # only the prompt's keys and values, for the prefix cache; no output


class Status(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class SamplingParams:
    """How a `generate` request picks tokens. temperature 0 means greedy."""

    max_new_tokens: int = 64
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    logprobs: int = 0

    def problems(self) -> list[str]:
        """Every bad value, each naming the parameter; empty when the params are usable."""
        checks = [
            (self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1"),
            (self.min_new_tokens >= 0, "min_new_tokens", "must be 0 or more"),
            (self.min_new_tokens <= self.max_new_tokens, "min_new_tokens", "exceeds max"),
            (self.temperature >= 0 and math.isfinite(self.temperature), "temperature", ">= 0"),
            (self.top_k >= 0, "top_k", "must be 0 (off) or more"),
            (0 < self.top_p <= 1, "top_p", "must be in (0, 1]"),
            (self.repetition_penalty > 0, "repetition_penalty", "must be > 0"),
            (-2 <= self.presence_penalty <= 2, "presence_penalty", "must be in [-2, 2]"),
            (-2 <= self.frequency_penalty <= 2, "frequency_penalty", "must be in [-2, 2]"),
            (0 <= self.logprobs <= 20, "logprobs", "must be in [0, 20]"),
            (all(self.stop), "stop", "stop strings must not be empty"),
            (len(self.stop) <= MAX_STOPS, "stop", f"has more than {MAX_STOPS} stop strings"),
            (
                all(len(s) <= MAX_STOP_CHARS for s in self.stop),
                "stop",
                f"has a stop string over {MAX_STOP_CHARS} characters",
            ),
        ]
        return [f"{name}={_shown(getattr(self, name))} {why}" for ok, name, why in checks if not ok]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    @property
    def penalized(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )

    @classmethod
    def from_body(cls, body: dict[str, Any], cap: int) -> SamplingParams:
        """The params of an API body (its JSON fields, in the native spelling), with every
        limit clamped together: the new-token budget to the server's `cap`, then the minimum
        to that budget, so a body valid on its own never fails for the server's cap."""
        max_new = min(int(body.get("max_new_tokens", 64)), cap)
        min_new = min(int(body.get("min_new_tokens", 0)), max_new)
        stop = body.get("stop") or ()
        return cls(
            max_new_tokens=max_new,
            min_new_tokens=min_new,
            temperature=body.get("temperature", 1.0),
            top_k=body.get("top_k", 0),
            top_p=body.get("top_p", 1.0),
            repetition_penalty=body.get("repetition_penalty", 1.0),
            presence_penalty=body.get("presence_penalty", 0.0),
            frequency_penalty=body.get("frequency_penalty", 0.0),
            seed=body.get("seed"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            ignore_eos=bool(body.get("ignore_eos", False)),
            logprobs=body.get("logprobs") or 0,
        )


def _shown(value: object, limit: int = 80) -> str:
    """A value for an error message, cut short: the value may be as long as a request body."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ids = itertools.count()


@dataclass
class Request:
    """One sequence in the engine. `score` requests rate `prompt_ids[score_from:]` given what
    precedes it; `embed` requests pool the hidden states of `prompt_ids`; `classify` requests
    end with the label probabilities (in `scores`, in label id order) of `prompt_ids`."""

    prompt_ids: list[int]
    kind: Kind = Kind.GENERATE
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    deadline: float | None = None  # time.monotonic() seconds
    score_from: int = 1
    pooling: str = "mean"
    arrival: float = field(default_factory=time.monotonic)

    status: Status = Status.WAITING
    slot: int | None = None
    num_computed: int = 0
    output_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None
    scores: list[float] = field(default_factory=list)
    top_scores: list[dict[int, float]] = field(default_factory=list)
    aborted: bool = False
    first_token_at: float | None = None
    scheduled_at: float | None = None

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids if self.output_ids else self.prompt_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def remaining(self) -> int:
        """Tokens whose keys and values are not in the cache yet."""
        return self.num_tokens - self.num_computed

    @property
    def reusable_prefix(self) -> int:
        """Leading prompt tokens that may come from the prefix cache: those whose hidden
        states this request does not read, never the last (the next token, the head or the
        pooling reads its state). A score request reads from the one before its first scored
        token; mean pooling reads every token."""
        last = len(self.prompt_ids) - 1
        if self.kind is Kind.SCORE:
            return min(max(self.score_from, 1) - 1, last)
        if self.kind is Kind.EMBED and self.pooling == "mean":
            return 0
        return last

    @property
    def needs_more_tokens(self) -> bool:
        """Fewer than min_new_tokens are out: end-of-text may not be sampled nor end it yet."""
        return len(self.output_ids) < self.params.min_new_tokens

    @property
    def in_prefill(self) -> bool:
        return self.num_computed < len(self.prompt_ids)

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED


# What a model with only a classification head cannot do, and what a language model cannot.
NEEDS_LM_HEAD = (Kind.GENERATE, Kind.SCORE)


def check_runnable(request: Request, vocab_size: int, labels: Sequence[str] = ()) -> None:
    """Raise `InvalidRequest`, saying why, for a request the engine cannot run as given on
    a model with `labels` (a classifier's, in id order; empty for a language model)."""
    if labels and request.kind in NEEDS_LM_HEAD:
        raise InvalidRequest(
            f"this model is a classifier (labels {', '.join(labels)}) with no language-model "
            f"head: it cannot run {request.kind} requests; classify with it"
        )
    if not labels and request.kind is Kind.CLASSIFY:
        raise InvalidRequest(
            "this model is a language model with no classification head: it cannot run "
            "classify requests"
        )
    if request.kind is Kind.GENERATE and (problems := request.params.problems()):
        raise InvalidRequest("bad sampling parameters: " + "; ".join(problems))
    if request.kind is Kind.SCORE and not 0 <= request.params.logprobs <= 20:
        raise InvalidRequest(f"logprobs={request.params.logprobs} must be in [0, 20]")
    if not request.prompt_ids:
        raise InvalidRequest("the prompt is empty; give at least one token")
    if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab_size:
        raise InvalidRequest(f"token ids must be in [0, {vocab_size})")
    if request.kind is Kind.SCORE and not 0 < request.score_from < len(request.prompt_ids):
        raise InvalidRequest("a score request needs a non-empty text after its prompt")
