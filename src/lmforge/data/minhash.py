"""MinHash signatures in bulk, and the LSH band keys the near-duplicate index stores.

The signatures are the ones `datasketch.MinHash(num_perm, seed)` computes (its default
"affine32" scheme: the first 4 bytes of each shingle's SHA-1, a MurmurHash3 finalizer, then
`a * h + b mod 2^32` per permutation, minimum over shingles), so the near-duplicates found
are those datasketch found; here a whole block of documents is one vectorised numpy pass
instead of one Python object per document. The band layout (`lsh_bands`) is the one
`datasketch.MinHashLSH` chooses for a threshold with weights (0.1, 0.9), favouring recall.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"\w+")
# The same words in ASCII text (where \w is [A-Za-z0-9_]), found twice as fast and as the
# bytes the shingles are hashed as.
_ASCII_WORD = re.compile(rb"\w+")
_MAX = np.uint32(0xFFFFFFFF)
# LSH only proposes candidates; full signatures decide. Missing a near-copy costs more.
FALSE_POSITIVE_WEIGHT = 0.1
FALSE_NEGATIVE_WEIGHT = 0.9
# Rows of (shingle x permutation) products computed at once: bounds a block's scratch memory.
_CHUNK_SHINGLES = 8192


def shingles(text: str, size: int) -> set[bytes]:
    """Lower-cased word n-grams; a document shorter than `size` words is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    mixed: np.ndarray = h ^ (h >> np.uint32(16))
    return mixed


class MinHasher:
    """`signatures(texts)`: one row of `num_perm` uint32 minima per text (all 2^32-1 for a
    text without words, like an empty datasketch MinHash)."""

    def __init__(self, num_perm: int, seed: int, shingle_words: int) -> None:
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        gen = np.random.RandomState(seed)
        self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)

    def shingle_hashes(self, text: str) -> bytes:
        """Each shingle's 32-bit SHA-1 prefix, concatenated (4 bytes a shingle). A repeated
        shingle is hashed again rather than deduplicated: the minimum does not change."""
        lowered = text.lower()
        if lowered.isascii():
            words = _ASCII_WORD.findall(lowered.encode("ascii"))
        else:
            words = [word.encode() for word in _WORD.findall(lowered)]
        size = self.shingle_words
        if len(words) <= size:
            return hashlib.sha1(b" ".join(words)).digest()[:4] if words else b""
        grams = map(b" ".join, zip(*(words[i:] for i in range(size)), strict=False))
        sha1 = hashlib.sha1
        return b"".join([sha1(gram).digest()[:4] for gram in grams])

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), num_perm), uint32."""
        hashed = [self.shingle_hashes(text) for text in texts]
        counts = np.fromiter((len(h) // 4 for h in hashed), dtype=np.int64, count=len(hashed))
        out = np.full((len(texts), self.num_perm), _MAX, dtype=np.uint32)
        if counts.sum() == 0:
            return out
        values = _fmix32(np.frombuffer(b"".join(hashed), dtype="<u4").astype(np.uint32))
        owners = np.repeat(np.arange(len(texts)), counts)
        # (num_perm, shingles): the reduction over each document's shingles runs along
        # contiguous memory, ten times faster than over rows.
        scratch = np.empty((self.num_perm, min(len(values), _CHUNK_SHINGLES)), dtype=np.uint32)
        a, b = self.a[:, None], self.b[:, None]
        for start in range(0, len(values), _CHUNK_SHINGLES):
            chunk = values[start : start + _CHUNK_SHINGLES]
            permuted = scratch[:, : len(chunk)]
            np.multiply(a, chunk, out=permuted)  # wraps mod 2^32, as datasketch's does
            permuted += b
            docs = owners[start : start + _CHUNK_SHINGLES]
            # Each document's shingles are contiguous: reduce over each run of equal owner.
            firsts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            minima = np.minimum.reduceat(permuted, firsts, axis=1).T
            rows = docs[firsts]
            out[rows] = np.minimum(out[rows], minima)
        return out


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Shape (n, bands), uint64: a 64-bit hash of each band's `rows` values and the band's
    number, so one table can hold every band. Equal bands give equal keys; a collision of
    unequal ones only adds a candidate, which the signature comparison then rejects."""
    n = signatures.shape[0]
    keys = np.empty((n, bands), dtype=np.uint64)
    mult = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for band in range(bands):
            h = np.full(n, np.uint64(band + 1) * np.uint64(0xC2B2AE3D27D4EB4F), dtype=np.uint64)
            for column in signatures[:, band * rows : (band + 1) * rows].T:
                h = (h ^ column.astype(np.uint64)) * mult
                h ^= h >> np.uint64(29)
            keys[:, band] = h
    return keys


@lru_cache(maxsize=32)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive and negative probability mass,
    as `datasketch.MinHashLSH` picks them. Gauss-Legendre quadrature is exact for these
    polynomials of degree <= num_perm."""
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 8)

    def integral(f: np.ndarray, lo: float, hi: float) -> float:
        return float((hi - lo) / 2 * np.dot(weights, f))

    s_fp = (nodes + 1) / 2 * threshold
    s_fn = threshold + (nodes + 1) / 2 * (1 - threshold)
    best, best_error = (0, 0), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = integral(1 - (1 - s_fp**r) ** b, 0.0, threshold)
            fn = integral((1 - s_fn**r) ** b, threshold, 1.0)
            error = fp * FALSE_POSITIVE_WEIGHT + fn * FALSE_NEGATIVE_WEIGHT
            if error < best_error:
                best, best_error = (b, r), error
    return best
