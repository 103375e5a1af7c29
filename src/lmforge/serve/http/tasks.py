"""Task routes: zero-shot /v1/classify, /v1/match by embeddings, /v1/summarize."""

from __future__ import annotations

from fastapi import APIRouter

from lmforge.serve import schemas as s
from lmforge.serve.http.deps import InferenceCall
from lmforge.serve.http.errors import INFERENCE_ERRORS, documented
from lmforge.serve.tasks import cosine, embeddings, label_scores, summarize

router = APIRouter(tags=["native"], responses=documented(*INFERENCE_ERRORS))


@router.post("/v1/classify", response_model=s.ClassifyResponse)
async def classify(body: s.ClassifyRequest, call: InferenceCall) -> dict[str, object]:
    """Zero-shot classification by label scoring: the probability of each candidate label
    as the model's continuation of `template`."""
    texts = [body.text] if isinstance(body.text, str) else body.text
    call.charge(sum(len(call.engine.encode(t)) for t in texts) * len(body.labels))
    work = label_scores(call.engine, texts, body.labels, body.template, call.timeout)
    results = []
    for scores in await call.wait(work):
        best, _ = max(scores.items(), key=lambda scored: scored[1])
        results.append({"label": best, "scores": scores})
    return {"results": results}


@router.post("/v1/match", response_model=s.MatchResponse)
async def match(body: s.MatchRequest, call: InferenceCall) -> dict[str, object]:
    """Cosine similarity of mean-pooled embeddings: a pair, or a query against candidates
    (ranked); with `threshold`, a match decision too."""
    if isinstance(body, s.MatchPair):
        texts = [body.text_a, body.text_b]
    else:
        texts = [body.query, *body.candidates]
    # Texts longer than the context are embedded by their beginning.
    ids = [call.engine.encode(t)[: call.engine.max_seq_len - 1] for t in texts]
    call.charge(sum(map(len, ids)))
    vectors, _ = await call.wait(embeddings(call.engine, ids, call.timeout))

    def decide(similarity: float) -> bool | None:
        return None if body.threshold is None else similarity >= body.threshold

    if isinstance(body, s.MatchPair):
        similarity = cosine(vectors[0], vectors[1])
        return {"similarity": similarity, "match": decide(similarity)}
    similarities = [cosine(vectors[0], v) for v in vectors[1:]]
    best_first = sorted(enumerate(similarities), key=lambda scored: -scored[1])
    ranking = [
        {"index": i, "text": body.candidates[i], "similarity": sim, "match": decide(sim)}
        for i, sim in best_first
    ]
    return {"ranking": ranking}


@router.post("/v1/summarize", response_model=s.SummarizeResponse)
async def summarize_route(body: s.SummarizeRequest, call: InferenceCall) -> dict[str, object]:
    """A summary by 'TL;DR:' prompting in the summarization training format (greedy, ends at
    the first newline)."""
    new = min(body.max_new_tokens, call.max_new_tokens)
    call.charge(len(call.engine.encode(body.text)), new)
    result = await call.wait(summarize(call.engine, body.text, new, call.timeout))
    return {"summary": result.text, "usage": s.usage(result.prompt_tokens, result.output_tokens)}
