"""OpenAI's two shapes of log-probabilities, built from the engine's per-token records
(`Event.logprobs`: a token id, its log-probability and the most likely ids with theirs):
the completions API's parallel lists, where an echoed prompt's tokens come first and the
first of them, which nothing predicts, has `null`; and the chat API's list of tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Decode = Callable[[list[int]], str]
Record = dict[str, Any]  # {"token_id": int, "logprob": float, "top": {id: logprob}}


def completion_logprobs(
    decode: Decode,
    records: Sequence[Record],
    first: int | None = None,
    offset: int = 0,
) -> dict[str, list[Any]]:
    """The completions `logprobs` of `records`: `first` (a prompt's first token) leads with a
    null log-probability and null alternatives; `offset` is where the first token's text
    starts in the choice's text."""
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    if first is not None:
        tokens.append(decode([first]))
        token_logprobs.append(None)
        top_logprobs.append(None)
    for record in records:
        tokens.append(decode([record["token_id"]]))
        token_logprobs.append(record["logprob"])
        top_logprobs.append({decode([t]): v for t, v in record["top"].items()})
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": offsets,
    }


def chat_logprobs(decode: Decode, records: Sequence[Record], top: int) -> dict[str, Any]:
    """The chat `logprobs` of `records`, each token with its `top` most likely ones."""

    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    content = []
    for record in records:
        ranked = sorted(record["top"].items(), key=lambda item: -item[1])[:top]
        content.append(
            {
                **entry(record["token_id"], record["logprob"]),
                "top_logprobs": [entry(t, v) for t, v in ranked],
            }
        )
    return {"content": content, "refusal": None}
