"""Task routes: /v1/classify (a classifier's head, or zero-shot for a language model),
/v1/match (a matcher's head, or embeddings for a language model), /v1/summarize."""

from __future__ import annotations

from fastapi import APIRouter

from lmforge.serve import schemas as s
from lmforge.serve.http.call import Call
from lmforge.serve.http.deps import ClassifyCall, MatchCall, SummarizeCall
from lmforge.serve.http.errors import INFERENCE_ERRORS, InvalidField, documented
from lmforge.serve.http.tokens import Keep, char_bound, cut
from lmforge.serve.models import MATCHER
from lmforge.serve.tasks import (
    classifier_texts,
    classify_texts,
    cosine,
    embedding_requests,
    head_probabilities,
    head_requests,
    label_probabilities,
    label_requests,
    pair_scores,
    pair_texts,
    summary_of,
    summary_request,
    summary_texts,
    unit_vectors,
)

router = APIRouter(tags=["native"], responses=documented(*INFERENCE_ERRORS))


@router.post("/v1/classify", response_model=s.ClassifyResponse)
async def classify(body: s.ClassifyRequest, call: ClassifyCall) -> dict[str, object]:
    """A classifier model runs its head: one forward over each text, the softmax over its
    labels (or over the given subset of them, renormalised). A language model classifies
    zero-shot by label scoring: the probability of each candidate label as its continuation
    of `template`."""
    texts = [body.text] if isinstance(body.text, str) else body.text
    if call.engine.labels:
        scored = await classify_by_head(call, texts, body.labels)
    else:
        scored = await classify_zero_shot(call, texts, body.labels, body.template)
    results = []
    for scores in scored:
        best, _ = max(scores.items(), key=lambda item: item[1])
        results.append({"label": best, "scores": scores})
    return {"results": results}


async def classify_by_head(
    call: Call, texts: list[str], labels: list[str] | None
) -> list[dict[str, float]]:
    """The classifier's probabilities over `labels` (all of its labels when None); 422
    naming any label the model does not have."""
    known = call.engine.labels
    if labels is not None and (unknown := [label for label in labels if label not in known]):
        raise InvalidField(
            "labels",
            f"this classifier has no label {', '.join(map(repr, unknown))}; its labels are "
            f"{', '.join(map(repr, known))}",
        )
    # A text too long keeps its end, as in zero-shot scoring and in training.
    ids = await call.encode(classifier_texts(texts), Keep.TAIL)
    requests = call.admit(head_requests(call.engine, ids, call.timeout))
    return head_probabilities(await call.complete(requests), known, labels or known)


async def classify_zero_shot(
    call: Call, texts: list[str], labels: list[str] | None, template: str
) -> list[dict[str, float]]:
    if labels is None:
        raise InvalidField(
            "labels", "required: this model is a language model and classifies zero-shot"
        )
    await check_template(call, template)
    bound = char_bound(call.engine)
    # A text keeps its end (next to the label), a label its beginning.
    texts = [cut(text, bound, Keep.TAIL) for text in texts]
    cut_labels = [cut(label, bound, Keep.HEAD) for label in labels]
    ids = await call.encode(classify_texts(texts, cut_labels, template), Keep.TAIL)
    contexts, label_ids = ids[: len(texts)], ids[len(texts) :]
    requests = label_requests(call.engine, contexts, label_ids, call.timeout)
    # The caller is charged for the scores only: the prefills save more than they cost.
    scores = call.admit(requests.scores)
    await call.complete(requests.prefills)
    return label_probabilities(await call.complete(scores), labels)


async def check_template(call: Call, template: str) -> None:
    """422 for a template that leaves no room in the context for a text and a label (the
    characters are checked first, so a huge one is refused without being encoded)."""
    context = call.engine.max_seq_len
    if len(template) > char_bound(call.engine):
        raise InvalidField(
            "template", f"{len(template):,} characters, more than a {context}-token context holds"
        )
    (ids,) = await call.encode([template.replace("{text}", "")])
    if len(ids) + 2 > context:
        raise InvalidField(
            "template",
            f"{len(ids)} tokens leave no room for a text and a label in the {context}-token "
            "context",
        )


@router.post("/v1/match", response_model=s.MatchResponse)
async def match(body: s.MatchRequest, call: MatchCall) -> dict[str, object]:
    """A pair's score, or a query's against each candidate (ranked, best first); with
    `threshold`, a match decision too (score >= threshold). A matcher scores each pair with its
    head, all pairs in one batch: P(match), or a regression head's raw value. A language model
    scores the cosine similarity of mean-pooled embeddings."""
    first, others = (
        (body.text_a, [body.text_b])
        if isinstance(body, s.MatchPair)
        else (body.query, body.candidates)
    )
    if call.model.kind == MATCHER:
        similarities = await match_by_head(call, first, others)
    else:
        similarities = await match_by_embeddings(call, first, others)

    def decide(similarity: float) -> bool | None:
        return None if body.threshold is None else similarity >= body.threshold

    if isinstance(body, s.MatchPair):
        return {"similarity": similarities[0], "match": decide(similarities[0])}
    best_first = sorted(enumerate(similarities), key=lambda scored: -scored[1])
    ranking = [
        {"index": i, "text": body.candidates[i], "similarity": sim, "match": decide(sim)}
        for i, sim in best_first
    ]
    return {"ranking": ranking}


async def match_by_head(call: Call, first: str, others: list[str]) -> list[float]:
    """A matcher's score of `first` paired with each of `others`; a pair too long for the
    context keeps its end, as in training."""
    ids = await call.encode(pair_texts(first, others), Keep.TAIL)
    requests = call.admit(head_requests(call.engine, ids, call.timeout))
    return pair_scores(await call.complete(requests), call.engine.labels)


async def match_by_embeddings(call: Call, first: str, others: list[str]) -> list[float]:
    """The cosine of `first`'s embedding with each of `others`' (texts longer than the
    context are embedded by their beginning)."""
    ids = [x[: call.engine.max_seq_len - 1] for x in await call.encode([first, *others])]
    requests = call.admit(embedding_requests(call.engine, ids, call.timeout))
    vectors, _ = unit_vectors(await call.complete(requests))
    return [cosine(vectors[0], v) for v in vectors[1:]]


@router.post("/v1/summarize", response_model=s.SummarizeResponse)
async def summarize_route(body: s.SummarizeRequest, call: SummarizeCall) -> dict[str, object]:
    """A summary by 'TL;DR:' prompting in the summarization training format (greedy, ends at
    the first newline)."""
    new = min(body.max_new_tokens, call.max_new_tokens)
    pieces = await call.encode(summary_texts(body.text))
    request = summary_request(call.engine, pieces, new, call.timeout)
    (event,) = await call.complete(call.admit([request]))
    result = summary_of(event)
    return {"summary": result.text, "usage": s.usage(result.prompt_tokens, result.output_tokens)}
