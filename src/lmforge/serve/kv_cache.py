"""The KV cache: which cache slot each running sequence holds, and the key/value tensors
behind the slots. The scheduler sees only the allocation (`SlotTable`, pure Python); the
forward writes and reads keys and values through `SlotKVCache`. A paged cache would keep the
same two faces: allocate/release per sequence, write/read per layer. Behind both, a prefix
cache (`prefix_cache.py`) fills a new sequence's slot with the keys and values of the longest
cached prefix of its prompt."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from lmforge.serve.prefix_cache import PrefixCache

if TYPE_CHECKING:
    import torch

    # How one step picks its slots: a slice when they are contiguous (a view, no copy),
    # else an index tensor.
    Rows: TypeAlias = slice | torch.Tensor


class SlotTable:
    """Fixed slots, one per running sequence; the lowest free slot is handed out first, so a
    lightly loaded engine keeps its slots contiguous."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = list(range(capacity))

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def used(self) -> int:
        return self.capacity - len(self._free)

    def allocate(self) -> int:
        """A free slot (the caller checks `free` first)."""
        return heapq.heappop(self._free)

    def release(self, slot: int) -> None:
        heapq.heappush(self._free, slot)

    def load_prefix(self, slot: int, ids: list[int], limit: int) -> int:
        """Fill `slot` with the keys and values of the longest cached prefix of the prompt
        `ids`, at most `limit` tokens; return how many tokens need no computing. A table
        without tensors caches none."""
        return 0


class SlotKVCache(SlotTable):
    """Keys and values of every slot: [n_layer, slots, n_head, max_seq_len, head_dim] each.
    GPT-2 has learned positions, so a slot's row p holds the token at position p. With a
    `prefix_budget_bytes`, prompts' leading blocks are kept (up to that many bytes) for later
    prompts that start the same way."""

    def __init__(
        self,
        capacity: int,
        max_seq_len: int,
        n_layer: int,
        n_head: int,
        head_dim: int,
        device: torch.device,
        dtype: torch.dtype,
        prefix_budget_bytes: int = 0,
    ) -> None:
        import torch

        super().__init__(capacity)
        self.max_seq_len = max_seq_len
        self.device = device
        shape = (n_layer, capacity, n_head, max_seq_len, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.prefix = (
            PrefixCache(self.keys, self.values, prefix_budget_bytes)
            if prefix_budget_bytes
            else None
        )

    def load_prefix(self, slot: int, ids: list[int], limit: int) -> int:
        return 0 if self.prefix is None else self.prefix.load(slot, ids, limit)

    def store_prefix(self, slot: int, ids: list[int]) -> None:
        """Keep the prompt `ids`, whose keys and values `slot` now holds, for later prompts."""
        if self.prefix is not None:
            self.prefix.store(slot, ids)

    def write(
        self,
        layer: int,
        slots: torch.Tensor,
        positions: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
    ) -> None:
        """Store the step's T tokens: `slots`, `positions` [T]; `keys`, `values` [T, H, D]."""
        self.keys[layer][slots, :, positions] = keys
        self.values[layer][slots, :, positions] = values

    def rows(self, slots: Sequence[int]) -> Rows:
        """How to read `slots` (in this order) at every layer of one step."""
        import torch

        first = slots[0]
        if tuple(slots) == tuple(range(first, first + len(slots))):
            return slice(first, first + len(slots))
        return torch.tensor(slots, device=self.device)

    def read(self, layer: int, rows: Rows, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of positions [0, length) of the chosen slots: [B, H, length, D]."""
        keys, values = self.keys[layer], self.values[layer]
        if isinstance(rows, slice):
            return keys[rows, :, :length], values[rows, :, :length]
        return (
            keys[:, :, :length].index_select(0, rows),
            values[:, :, :length].index_select(0, rows),
        )
