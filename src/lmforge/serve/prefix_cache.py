"""Prefix sharing: the keys and values of recent prompts' leading blocks, kept under a byte
budget, so that a prompt starting with a cached prefix copies them into its slot instead of
recomputing them (a long shared system prompt; zero-shot classification, whose label requests
all continue one context).

A prompt is cut into blocks of `BLOCK_TOKENS` tokens; block i is keyed by its tokens and the
id of block i-1's entry, so a key names the whole prefix exactly (no hash collisions) and
prompts that share their beginning share its entries. GPT-2 has learned positions, so a
block's keys and values are the same in every prompt that starts with the same tokens. A
prompt's last partial block is kept too, as a leaf entry that a prompt going on from it can
use (zero-shot labels after a context that ends mid-block).

Eviction is LRU over entries. Every use touches a chain from its last block back to its
first, so an entry is always more recent than its descendants: the least recently used entry
is never a parent, and evicting it leaves no entry unreachable."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Tokens per cached block: large enough that a 1,000-token prefix is 63 lookups and copies,
# not 1,000; small enough that prompts that part mid-block lose little.
BLOCK_TOKENS = 16

# A block's key: (the id of the previous block's entry, 0 for the first; the block's tokens).
Key = tuple[int, tuple[int, ...]]


@dataclass
class PrefixStats:
    """Cumulative figures. A lookup is made for each admitted request that could reuse at
    least one block (a score request needs the hidden states of what it scores, an embed
    request with mean pooling those of every token, so they reuse less or nothing)."""

    hit_requests: int = 0  # lookups that reused at least one block
    miss_requests: int = 0
    hit_tokens: int = 0  # prompt tokens copied from the cache
    miss_tokens: int = 0  # prompt tokens of the looked-up requests computed anyway
    evictions: int = 0  # blocks dropped to stay under the budget
    bytes: int = 0  # keys and values held now
    budget_bytes: int = 0


@dataclass
class Entry:
    key: Key
    id: int
    keys: torch.Tensor  # [n_layer, n_head, BLOCK_TOKENS (or fewer), head_dim]
    values: torch.Tensor

    @property
    def length(self) -> int:
        """Tokens: BLOCK_TOKENS, fewer for a prompt's last partial block."""
        return int(self.keys.shape[2])

    @property
    def nbytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()


class PrefixCache:
    """Block entries copied out of and into the slots of `keys` and `values` ([n_layer,
    slots, n_head, max_seq_len, head_dim], the slot cache's tensors)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, budget_bytes: int) -> None:
        self.keys = keys
        self.values = values
        self.stats = PrefixStats(budget_bytes=budget_bytes)
        self._entries: OrderedDict[Key, Entry] = OrderedDict()  # least recently used first
        self._ids = itertools.count(1)

    def load(self, slot: int, ids: list[int], limit: int) -> int:
        """Copy the longest cached prefix of `ids` (up to the blocks that cover `limit`
        tokens) into `slot`; return how many leading tokens are now in the slot and need no
        computing: at most `limit`, which the caller keeps below the prompt's length so the
        last position still gets its hidden state."""
        if limit < BLOCK_TOKENS:
            return 0
        chain = self._chain(ids[: -(-limit // BLOCK_TOKENS) * BLOCK_TOKENS], tail=True)
        for index, entry in enumerate(chain):
            where = slice(index * BLOCK_TOKENS, index * BLOCK_TOKENS + entry.length)
            self.keys[:, slot, :, where] = entry.keys
            self.values[:, slot, :, where] = entry.values
        self._touch(chain)
        reused = min(sum(entry.length for entry in chain), limit)
        if reused:
            self.stats.hit_requests += 1
        else:
            self.stats.miss_requests += 1
        self.stats.hit_tokens += reused
        self.stats.miss_tokens += len(ids) - reused
        return reused

    def store(self, slot: int, ids: list[int]) -> None:
        """Keep the blocks of `ids`, whose keys and values `slot` holds at positions [0,
        len(ids)), that are not cached yet, evicting the least recently used entries (never
        this prompt's own) to stay under the budget; as many as fit, first first."""
        whole = len(ids) // BLOCK_TOKENS
        chain = self._chain(ids[: whole * BLOCK_TOKENS], tail=False)
        self._touch(chain)
        spans = [(i * BLOCK_TOKENS, (i + 1) * BLOCK_TOKENS) for i in range(len(chain), whole)]
        tail = (chain[-1].id if chain else 0, tuple(ids[whole * BLOCK_TOKENS :]))
        if tail[1] and (spans or tail not in self._entries):
            spans.append((whole * BLOCK_TOKENS, len(ids)))
        if not spans:
            return
        token_bytes = 2 * self.keys[:, slot, :, :1].numel() * self.keys.element_size()
        room = self._make_room(sum(b - a for a, b in spans) * token_bytes, keep=len(chain))
        parent = chain[-1].id if chain else 0
        for first, end in spans:
            room -= (end - first) * token_bytes
            if room < 0:
                break
            key = (parent, tuple(ids[first:end]))
            entry = Entry(
                key,
                next(self._ids),
                self.keys[:, slot, :, first:end].clone(),
                self.values[:, slot, :, first:end].clone(),
            )
            self._entries[key] = entry
            self.stats.bytes += entry.nbytes
            chain.append(entry)
            parent = entry.id
        self._touch(chain)

    def _chain(self, ids: list[int], tail: bool) -> list[Entry]:
        """The cached entries of the leading whole blocks of `ids`, up to the first missing;
        with `tail`, then the longest cached partial block that `ids` goes on with."""
        chain: list[Entry] = []
        parent, start = 0, 0
        while start + BLOCK_TOKENS <= len(ids):
            entry = self._entries.get((parent, tuple(ids[start : start + BLOCK_TOKENS])))
            if entry is None:
                break
            chain.append(entry)
            parent, start = entry.id, start + BLOCK_TOKENS
        for length in range(min(BLOCK_TOKENS - 1, len(ids) - start), 0, -1) if tail else ():
            if entry := self._entries.get((parent, tuple(ids[start : start + length]))):
                chain.append(entry)
                break
        return chain

    def _touch(self, chain: list[Entry]) -> None:
        """Mark a chain used, last block first, so each entry is newer than its children."""
        for entry in reversed(chain):
            self._entries.move_to_end(entry.key)

    def _make_room(self, wanted: int, keep: int) -> int:
        """Evict least recently used entries, but not the `keep` most recent (the chain being
        stored, just touched), until `wanted` more bytes fit; return how many bytes fit."""
        budget = self.stats.budget_bytes
        while self.stats.bytes + wanted > budget and len(self._entries) > keep:
            _, entry = self._entries.popitem(last=False)
            self.stats.bytes -= entry.nbytes
            self.stats.evictions += 1
        return max(0, min(wanted, budget - self.stats.bytes))
