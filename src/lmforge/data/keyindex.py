"""A compact multimap from 64-bit keys to 32-bit values, looked up a block of keys at a time.

Python dicts spend about 100 bytes an entry; this holds 12 (a uint64 key and a uint32 value
in numpy arrays). Entries live in sorted runs, merged when a run is no larger than the one
after it (a log-structured merge), so inserting n keys costs O(n log n) in total and a
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
        order = np.argsort(keys, kind="stable")
        self._keys.append(keys.astype(np.uint64)[order])
        self._values.append(values.astype(np.uint32)[order])
        while len(self._keys) > 1 and len(self._keys[-2]) <= 2 * len(self._keys[-1]):
            keys_b, values_b = self._keys.pop(), self._values.pop()
            keys_a, values_a = self._keys.pop(), self._values.pop()
            merged = np.concatenate([keys_a, keys_b])
            order = np.argsort(merged, kind="stable")
            self._keys.append(merged[order])
            self._values.append(np.concatenate([values_a, values_b])[order])

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every stored pair whose key is among `keys`: (positions in `keys`, values)."""
        positions: list[np.ndarray] = []
        found: list[np.ndarray] = []
        for run_keys, run_values in zip(self._keys, self._values, strict=True):
            lo = np.searchsorted(run_keys, keys, side="left")
            hi = np.searchsorted(run_keys, keys, side="right")
            counts = hi - lo
            hits = np.flatnonzero(counts)
            if len(hits) == 0:
                continue
            reps = counts[hits]
            # The stored entries lo[h] .. hi[h]-1 of every hit h, flattened.
            starts = np.repeat(lo[hits] - np.cumsum(reps) + reps, reps)
            positions.append(np.repeat(hits, reps))
            found.append(run_values[starts + np.arange(reps.sum())])
        if not positions:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint32)
        return np.concatenate(positions), np.concatenate(found)
