"""Stage 5: sampling. `HashSampler` keeps a fraction by document hash (streaming);
`representative_ordinals` is the clustering-based selection (two passes over a spill file)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from lmforge.data.document import Document, StageStats, batched
from lmforge.data.split import unit_hash
from lmforge.errors import DataError, MissingDependencyError

BATCH = 2048


class HashSampler:
    """Keeps a document when its hash falls below `fraction`: the same document is kept or
    dropped the same way in every run, whatever else the corpus holds."""

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.salt = f"sample{seed}"
        self.stats = StageStats("sample", details={"mode": "random", "fraction": fraction})

    def __call__(self, doc: Document) -> Document | None:
        if self.fraction < 1.0 and unit_hash(doc.text, self.salt) >= self.fraction:
            self.stats.drop("not_sampled", doc)
            return None
        return doc


def representative_ordinals(
    read: Callable[[], Iterable[Document]],
    *,
    clusters: int,
    fraction: float,
    seed: int,
    stats: StageStats,
) -> set[int]:
    """Cluster hashed bag-of-words vectors with MiniBatchKMeans and keep, in every cluster, the
    documents nearest its centroid; each cluster's share of the budget follows its size.

    `read()` re-reads the documents (three passes: fit, cluster sizes, selection); memory holds
    the centroids and, per cluster, a heap bounded by its quota.
    """
    try:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.feature_extraction.text import HashingVectorizer
    except ImportError:
        raise MissingDependencyError(
            "--sample representative:K", "scikit-learn", "sample"
        ) from None
    vectorizer = HashingVectorizer(n_features=2**18, alternate_sign=False, norm="l2")
    kmeans = MiniBatchKMeans(n_clusters=clusters, random_state=seed, batch_size=BATCH, n_init=3)
    total = 0
    pending: list[Document] = []
    for batch in batched(read(), BATCH):
        total += len(batch)
        # partial_fit needs at least K rows in its first call; carry small batches forward.
        pending.extend(batch)
        if len(pending) >= clusters:
            kmeans.partial_fit(vectorizer.transform([d.text for d in pending]))
            pending = []
    if total < clusters:
        raise DataError(
            f"representative sampling asked for {clusters} clusters but only {total} documents "
            "are left after cleaning",
            hint="use a smaller K in --sample representative:K",
        )
    if pending:
        kmeans.partial_fit(vectorizer.transform([d.text for d in pending]))

    def assigned() -> Iterator[tuple[Document, int, float]]:
        for batch in batched(read(), BATCH):
            distances = kmeans.transform(vectorizer.transform([d.text for d in batch]))
            labels = distances.argmin(axis=1)
            for doc, label, row in zip(batch, labels, distances, strict=True):
                yield doc, int(label), float(row[label])

    sizes = np.zeros(clusters, dtype=np.int64)
    for _, label, _ in assigned():
        sizes[label] += 1
    budget = max(1, round(fraction * total))
    quotas = _quotas(sizes, budget)
    nearest: dict[int, list[tuple[float, int]]] = {c: [] for c in range(clusters)}
    for doc, label, distance in assigned():
        heap = nearest[label]
        item = (-distance, -doc.ordinal)  # max-heap on distance; ties keep the earlier document
        if len(heap) < quotas[label]:
            heapq.heappush(heap, item)
        elif heap and item > heap[0]:
            heapq.heapreplace(heap, item)
    kept = {-neg_ordinal for heap in nearest.values() for _, neg_ordinal in heap}
    stats.details.update(
        {"mode": "representative", "clusters": clusters, "fraction": fraction, "budget": budget}
    )
    stats.details["cluster_sizes"] = sizes.tolist()
    return kept


def _quotas(sizes: np.ndarray, budget: int) -> list[int]:
    """Split `budget` across clusters in proportion to their sizes (largest remainder)."""
    share = sizes / sizes.sum() * budget
    quotas = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - quotas), kind="stable")
    quotas[order[: budget - int(quotas.sum())]] += 1
    return [int(q) for q in quotas]
