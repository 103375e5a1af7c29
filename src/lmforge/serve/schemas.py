"""Request and response bodies of the API (pydantic: validation and the OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Stop = str | list[str] | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingFields(Strict):
    temperature: float = Field(1.0, ge=0, le=5, description="0 = greedy.")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens (0 = off).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(1.0, gt=0, le=10)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, description="Same seed, same text, whatever else runs.")
    stop: Stop = Field(None, description="Stop strings (not included in the output).")


class GenerateRequest(SamplingFields):
    prompt: str = Field(..., min_length=1)
    max_new_tokens: int = Field(64, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    ignore_eos: bool = False
    stream: bool = Field(False, description="Server-sent events, one per new piece of text.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class GenerateResponse(BaseModel):
    id: str
    text: str
    finish_reason: str
    usage: Usage


class ClassifyRequest(Strict):
    text: str | list[str] = Field(..., description="One text or a list.")
    labels: list[str] = Field(..., min_length=2, max_length=50)
    template: str = Field(
        "Text: {text}\nCategory:", description="Prompt; `{text}` is replaced by each text."
    )

    @model_validator(mode="after")
    def _check(self) -> ClassifyRequest:
        texts = [self.text] if isinstance(self.text, str) else self.text
        if not texts or any(not t.strip() for t in texts):
            raise ValueError("text must be non-empty")
        if len(texts) > 64:
            raise ValueError(f"at most 64 texts per request, got {len(texts)}")
        if "{text}" not in self.template:
            raise ValueError("template must contain {text}")
        if any(not label.strip() for label in self.labels) or len(set(self.labels)) != len(
            self.labels
        ):
            raise ValueError("labels must be distinct and non-empty")
        return self


class ClassifyResult(BaseModel):
    label: str
    scores: dict[str, float]


class ClassifyResponse(BaseModel):
    results: list[ClassifyResult]


class MatchRequest(Strict):
    text_a: str | None = None
    text_b: str | None = None
    query: str | None = None
    candidates: list[str] | None = Field(None, max_length=256)
    threshold: float | None = Field(None, ge=-1, le=1, description="Decide match above this.")

    @model_validator(mode="after")
    def _check(self) -> MatchRequest:
        pair = self.text_a is not None and self.text_b is not None
        ranked = self.query is not None and bool(self.candidates)
        if pair == ranked:
            raise ValueError("give either text_a and text_b, or query and candidates")
        texts = [self.text_a, self.text_b] if pair else [self.query, *self.candidates]
        if any(not (t or "").strip() for t in texts):
            raise ValueError("texts must be non-empty")
        return self


class MatchScore(BaseModel):
    index: int
    text: str
    similarity: float
    match: bool | None = None


class MatchResponse(BaseModel):
    similarity: float | None = None
    match: bool | None = None
    ranking: list[MatchScore] | None = None


class SummarizeRequest(Strict):
    text: str = Field(..., min_length=1)
    max_new_tokens: int = Field(60, ge=1)


class SummarizeResponse(BaseModel):
    summary: str
    usage: Usage


class TokenizeRequest(Strict):
    text: str


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


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# OpenAI-compatible ---------------------------------------------------------------------------


class OpenAIBase(BaseModel):
    # Fields OpenAI clients may send that we accept and ignore (user, suffix, ...).
    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionRequest(OpenAIBase):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="Only n=1 is supported.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: int | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    # vLLM's extras, which benchmark tools rely on.
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0, le=10)


class EmbeddingRequest(OpenAIBase):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    pooling: Literal["mean", "last"] = "mean"


class ReloadResponse(BaseModel):
    model: str
    version: str | None
    sha256: str
