"""The KV cache on its own: slot allocation, and keys/values read back as written."""

from __future__ import annotations

import torch

from lmforge.serve.kv_cache import SlotKVCache, SlotTable


def test_the_lowest_free_slot_is_handed_out_first() -> None:
    table = SlotTable(3)
    assert [table.allocate() for _ in range(3)] == [0, 1, 2]
    assert table.free == 0 and table.used == 3
    table.release(2)
    table.release(0)
    assert table.allocate() == 0 and table.free == 1


def cache() -> SlotKVCache:
    return SlotKVCache(4, 8, 2, 3, 5, torch.device("cpu"), torch.float32)


def test_what_is_written_is_read_back_for_any_choice_of_slots() -> None:
    kv = cache()
    torch.manual_seed(0)
    keys, values = torch.randn(6, 3, 5), torch.randn(6, 3, 5)
    # Positions 0-2 of slots 1 and 3, at layer 1.
    slots = torch.tensor([1, 1, 1, 3, 3, 3])
    positions = torch.tensor([0, 1, 2, 0, 1, 2])
    kv.write(1, slots, positions, keys, values)
    assert isinstance(kv.rows([1, 2]), slice)  # contiguous: a view, no copy
    for chosen in ([1, 3], [3, 1]):
        read_keys, read_values = kv.read(1, kv.rows(chosen), 3)
        assert read_keys.shape == (2, 3, 3, 5)  # [B, H, length, D]
        for i, slot in enumerate(chosen):
            rows = slice(0, 3) if slot == 1 else slice(3, 6)
            assert torch.equal(read_keys[i], keys[rows].transpose(0, 1))
            assert torch.equal(read_values[i], values[rows].transpose(0, 1))
    assert not kv.read(0, kv.rows([1]), 3)[0].any()  # other layers are untouched
