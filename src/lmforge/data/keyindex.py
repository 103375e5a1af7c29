"""A compact multimap from 64-bit keys to 32-bit values, looked up a block of keys at a time.

Python dicts spend about 100 bytes an entry; this holds 12 (a uint64 key and a uint32 value
in numpy arrays). Entries live in sorted runs, merged when a run is no larger than twice the
one after it (a log-structured merge), so inserting n keys costs O(n log n) in total and a
lookup is one binary search per run (O(log n) runs).
"""

from __future__ import annotations

import numpy as np


class KeyIndex:
    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._values: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(k) for k in self._keys)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self._keys, self._values, strict=True))

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Insert pairs (a key may repeat, with the same or other values)."""
        if len(keys) == 0:
            return
        order = np.argsort(keys)
        self._keys.append(keys.astype(np.uint64)[order])
        self._values.append(values.astype(np.uint32)[order])
        while len(self._keys) > 1 and len(self._keys[-2]) <= 2 * len(self._keys[-1]):
            keys_b, values_b = self._keys.pop(), self._values.pop()
            keys_a, values_a = self._keys.pop(), self._values.pop()
            # Where each of b's keys lands among a's: a linear merge, no re-sort.
            slots = np.searchsorted(keys_a, keys_b, side="right") + np.arange(len(keys_b))
            from_a = np.ones(len(keys_a) + len(keys_b), dtype=bool)
            from_a[slots] = False
            for out_list, a, b in (
                (self._keys, keys_a, keys_b),
                (self._values, values_a, values_b),
            ):
                merged = np.empty(len(a) + len(b), dtype=a.dtype)
                merged[slots] = b
                merged[from_a] = a
                out_list.append(merged)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every stored pair whose key is among `keys`: (positions in `keys`, values)."""
        positions: list[np.ndarray] = []
        found: list[np.ndarray] = []
        # Sorted needles: each binary search starts near the last one's answer (cache-warm).
        order = np.argsort(keys)
        needles = keys[order]
        for run_keys, run_values in zip(self._keys, self._values, strict=True):
            lo = np.searchsorted(run_keys, needles, side="left")
            present = run_keys[np.minimum(lo, len(run_keys) - 1)] == needles
            hits = np.flatnonzero(present & (lo < len(run_keys)))
            if len(hits) == 0:
                continue
            hi = np.searchsorted(run_keys, needles[hits], side="right")
            reps = hi - lo[hits]
            # The stored entries lo .. hi-1 of every hit, flattened.
            starts = np.repeat(lo[hits] - np.cumsum(reps) + reps, reps)
            positions.append(np.repeat(order[hits], reps))
            found.append(run_values[starts + np.arange(reps.sum())])
        if not positions:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint32)
        return np.concatenate(positions), np.concatenate(found)
