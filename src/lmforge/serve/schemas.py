"""Request and response bodies of the API (pydantic: validation and the OpenAPI schema).

Longer than ~300 lines on purpose: every body of every route, with the text types they share,
in one module, so that the OpenAPI schema (which schemathesis holds the server to) has one
source."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from lmforge import prompts
from lmforge.serve.request import MAX_STOP_CHARS, MAX_STOPS

# The most prompts one completions request may carry (each is one engine request).
MAX_PROMPTS = 256
# The most choices per prompt (`n`): each is one engine request.
MAX_CHOICES = 8
# The most messages of one chat request.
MAX_MESSAGES = 256
# OpenAI's default max_tokens of a completion.
DEFAULT_MAX_TOKENS = 16


def _unicode(value: str) -> str:
    """JSON can spell a lone surrogate ("\\udfff"), which is no character: no tokenizer can
    encode it, so it is refused here, naming the field, like any other invalid value."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode: a lone surrogate at character {exc.start}") from None
    return value


# Every text field of every body: a string of real characters. (The check comes after a
# field's own constraints, which then stay in the JSON Schema.)
UNICODE = AfterValidator(_unicode)
Unicode = Annotated[str, UNICODE]


def _one_stop_error(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """One message for a bad `stop`, instead of one per branch of its union."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "stop",
            f"must be a string or a list of at most {MAX_STOPS} non-empty strings, "
            f"each of at most {MAX_STOP_CHARS} valid Unicode characters",
        ) from None


# Stop strings: the engine matches them at every token, so their number and length are
# bounded ("" alone means none).
StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS), UNICODE]
Stop = Annotated[
    StopString
    | Annotated[list[Annotated[StopString, Field(min_length=1)]], Field(max_length=MAX_STOPS)]
    | None,
    WrapValidator(_one_stop_error),
]
# A text with something in it: what every task route needs, said in the schema itself so
# clients (and schemathesis) see the rule the server applies.
Text = Annotated[str, Field(min_length=1, pattern=r"\S"), UNICODE]


def _integral(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema has it: 2.0 is one (the models are strict, which would refuse it).
Int = Annotated[int, BeforeValidator(_integral)]


# The native routes' `model` field, as OpenAI's: which served model answers.
MODEL_HELP = (
    "The served model to use (see /v1/models); default: the one model of the kind this route needs."
)


class Strict(BaseModel):
    # strict: JSON types as the schema says them (no 0.0 for false, no "1" for 1).
    model_config = ConfigDict(extra="forbid", strict=True)


class SamplingFields(Strict):
    temperature: float = Field(1.0, ge=0, le=5, description="0 = greedy.")
    top_k: Int = Field(0, ge=0, description="Keep the k most likely tokens (0 = off).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(1.0, gt=0, le=10)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    seed: Int | None = Field(None, description="Same seed, same text, whatever else runs.")
    stop: Stop = Field(None, description="Stop strings (not included in the output).")


class GenerateRequest(SamplingFields):
    model: str | None = Field(None, description=MODEL_HELP)
    prompt: Annotated[str, Field(min_length=1), UNICODE] = Field(
        ..., description="A prompt longer than the context is refused (422)."
    )
    max_new_tokens: Int = Field(64, ge=1)
    min_new_tokens: Int = Field(0, ge=0)
    ignore_eos: bool = False
    stream: bool = Field(False, description="Server-sent events, one per new piece of text.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


def usage(prompt: int, completion: int) -> dict[str, int]:
    """A `Usage` body."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class GenerateResponse(BaseModel):
    id: str
    text: str
    finish_reason: str
    usage: Usage


class ClassifyRequest(Strict):
    model: str | None = Field(None, description=MODEL_HELP)
    text: Text | Annotated[list[Text], Field(min_length=1, max_length=64)] = Field(
        ..., description="One text or a list of up to 64."
    )
    labels: list[Text] | None = Field(
        None,
        min_length=2,
        max_length=50,
        json_schema_extra={"uniqueItems": True},
        description="Candidate labels. Required for a language model (zero-shot label "
        "scoring). Optional for a classifier (default: all its labels); given, a subset of its "
        "labels, whose probabilities are then renormalised over that subset.",
    )
    template: Annotated[str, Field(pattern=r"\{text\}"), UNICODE] = Field(
        prompts.CLASSIFY_TEMPLATE,
        description="Prompt of zero-shot label scoring; `{text}` is replaced by each text. A "
        "template that leaves no room in the context for a text and a label is refused (422). "
        "A classifier reads the bare text, as it was trained. A text too long keeps its end.",
    )

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None and len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels


class ClassifyResult(BaseModel):
    label: str
    scores: dict[str, float]


class ClassifyResponse(BaseModel):
    results: list[ClassifyResult]


THRESHOLD_HELP = (
    "Decide `match`: similarity >= threshold. The similarity is a matcher's score (P(match), "
    "in [0, 1], or a regression head's raw value, e.g. 0-5 for STS-B) or, for a language model, "
    "the cosine of embeddings, in [-1, 1]."
)

SIMILARITY_HELP = (
    "A matcher's score of the pair (P(match), or its regression head's raw value), or a "
    "language model's embedding cosine."
)


class MatchPair(Strict):
    model: str | None = Field(None, description=MODEL_HELP)
    text_a: Text
    text_b: Text
    threshold: float | None = Field(None, allow_inf_nan=False, description=THRESHOLD_HELP)


class MatchQuery(Strict):
    model: str | None = Field(None, description=MODEL_HELP)
    query: Text
    candidates: list[Text] = Field(..., min_length=1, max_length=256)
    threshold: float | None = Field(None, allow_inf_nan=False, description=THRESHOLD_HELP)


MatchRequest = MatchPair | MatchQuery


class MatchScore(BaseModel):
    index: int
    text: str
    similarity: float = Field(..., description=SIMILARITY_HELP)
    match: bool | None = None


class MatchResponse(BaseModel):
    similarity: float | None = Field(None, description=SIMILARITY_HELP)
    match: bool | None = None
    ranking: list[MatchScore] | None = None


class SummarizeRequest(Strict):
    model: str | None = Field(None, description=MODEL_HELP)
    text: Text = Field(..., description="Longer texts keep their beginning, to fit the context.")
    max_new_tokens: Int = Field(60, ge=1)


class SummarizeResponse(BaseModel):
    summary: str
    usage: Usage


class TokenizeRequest(Strict):
    model: str | None = Field(None, description=MODEL_HELP)
    text: Unicode


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_context: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lmforge"
    version: str | None
    sha256: str
    context_length: int
    kind: Literal["generator", "classifier", "matcher", "summarizer"]
    labels: list[str] | None = Field(None, description="A classifier's labels, in id order.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# OpenAI-compatible ---------------------------------------------------------------------------


class OpenAIBase(BaseModel):
    # Fields OpenAI clients may send that we accept and ignore (user, suffix, ...).
    model_config = ConfigDict(extra="allow", strict=True)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True)

    include_usage: bool = False


# Token ids as a prompt: one prompt, or a list of prompts.
TokenIds = Annotated[list[Int], Field(min_length=1)]


class OpenAISampling(OpenAIBase):
    """The sampling fields completions and chat share (OpenAI's, then vLLM's extras)."""

    model: str | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: Int = Field(
        1, ge=1, le=MAX_CHOICES, description=f"Choices per prompt (at most {MAX_CHOICES})."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: Int | None = Field(
        None, description="Choice i of a prompt samples with seed + i (so n choices differ)."
    )
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    # vLLM's extras, which benchmark tools and evaluation harnesses rely on.
    ignore_eos: bool = False
    min_tokens: Int = Field(0, ge=0)
    top_k: Int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0, le=10)
    truncate_prompt_tokens: Literal[-1] | Annotated[Int, Field(ge=1)] | None = Field(
        None,
        description="Keep only the prompt's last N tokens (-1: as many as fit the context "
        "with the new tokens). Without it, a prompt plus max_tokens over the context is 400.",
    )

    def sampling(self) -> dict[str, Any]:
        """The declared sampling fields (not the extras a client may add) in the native
        spelling, as `SamplingParams.from_body` reads them; the new-token budget is the
        route's to set."""
        fields = self.model_dump(include=set(OpenAISampling.model_fields))
        fields["min_new_tokens"] = fields.pop("min_tokens")
        return fields


class CompletionRequest(OpenAISampling):
    prompt: (
        Unicode
        | Annotated[list[Unicode], Field(min_length=1, max_length=MAX_PROMPTS)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_PROMPTS)]
    ) = Field(
        ...,
        description="A text, token ids, or a list of up to "
        f"{MAX_PROMPTS} of either. An empty text generates from the start of a document "
        "(after <|endoftext|>).",
    )
    max_tokens: Int | None = Field(
        None,
        ge=0,
        description="New tokens per choice (default 16, less when the context has less "
        "room); 0 only with echo (score the prompt).",
    )
    logprobs: Int | None = Field(None, ge=0, le=20)
    echo: bool = Field(
        False, description="Return the prompt before the text (with logprobs: its tokens')."
    )

    @property
    def requested_tokens(self) -> int | None:
        return self.max_tokens

    def sampling(self) -> dict[str, Any]:
        fields = super().sampling()
        fields["max_new_tokens"] = (
            DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens
        )
        fields["logprobs"] = self.logprobs
        return fields


class ChatContentPart(OpenAIBase):
    type: Literal["text"]
    text: Unicode


class ChatMessage(OpenAIBase):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Unicode | list[ChatContentPart] | None = None


class ChatCompletionRequest(OpenAISampling):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: Int | None = Field(
        None, ge=1, description="New tokens per choice (default: what the context has room for)."
    )
    max_tokens: Int | None = Field(
        None, ge=1, description="The older name of max_completion_tokens."
    )
    logprobs: bool = False
    top_logprobs: Int | None = Field(None, ge=0, le=20, description="With logprobs: true.")

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens else self.max_tokens

    def sampling(self) -> dict[str, Any]:
        fields = super().sampling()
        fields["max_new_tokens"] = self.requested_tokens or DEFAULT_MAX_TOKENS
        # The chosen token's log-probability needs at least one ranked token; the answer
        # shows `top_logprobs` of them.
        fields["logprobs"] = max(self.top_logprobs or 0, 1) if self.logprobs else 0
        return fields


class EmbeddingRequest(OpenAIBase):
    model: str | None = None
    input: (
        Text
        | Annotated[list[Text], Field(min_length=1, max_length=256)]
        | Annotated[list[Int], Field(min_length=1)]
        | Annotated[
            list[Annotated[list[Int], Field(min_length=1)]], Field(min_length=1, max_length=256)
        ]
    )
    encoding_format: Literal["float", "base64"] = "float"
    pooling: Literal["mean", "last"] = "mean"


class ReloadResponse(BaseModel):
    model: str
    version: str | None
    sha256: str


class ErrorDetail(BaseModel):
    type: str
    message: str
    param: str | None = None


class ErrorResponse(BaseModel):
    """The one error shape of every route."""

    error: ErrorDetail


def error_body(kind: str, message: str, param: str | None = None) -> dict[str, object]:
    """An `ErrorResponse` body."""
    return {"error": {"type": kind, "message": message, "param": param}}


class ProbeStatus(BaseModel):
    status: str
    reason: str | None = None


class PingResponse(BaseModel):
    success: bool
    message: str
