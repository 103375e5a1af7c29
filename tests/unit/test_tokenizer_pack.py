from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmforge.data.document import Document
from lmforge.data.pack import pack, token_dtype
from lmforge.data.tokenizer import END_OF_TEXT, load_tokenizer, train_bpe, train_char
from lmforge.errors import DataError


def test_bpe_round_trips_real_text(ptb_lines: list[str]) -> None:
    tokenizer = train_bpe(ptb_lines, vocab_size=600, min_frequency=2)
    assert tokenizer.get_vocab_size() == 600
    assert tokenizer.token_to_id(END_OF_TEXT) == 0
    for text in (*ptb_lines[:20], "naïve café — 😀 tabs\tand\nnewlines"):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(ids) == text
    # Merges were learned: common words take fewer tokens than characters.
    sample = " ".join(ptb_lines[100:200])
    assert len(tokenizer.encode(sample).ids) < len(sample) / 2


def test_char_level_round_trip_and_unknowns(ptb_lines: list[str]) -> None:
    tokenizer = train_char(ptb_lines[:200])
    text = ptb_lines[1]
    ids = tokenizer.encode(text).ids
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode("Ω").tokens == ["<unk>"]


def test_pack_writes_documents_separated_by_end_of_text(
    tmp_path: Path, ptb_lines: list[str]
) -> None:
    tokenizer = train_bpe(ptb_lines, vocab_size=400, min_frequency=2)
    docs = [Document(t, "x", i * 3) for i, t in enumerate(ptb_lines[:2500])]
    out = tmp_path / "train.bin"
    count, tokens, words = pack(docs, tokenizer, out)
    assert words == sum(len(t.split()) + 1 for t in ptb_lines[:2500])
    flat = np.fromfile(out, dtype=np.uint16)
    assert count == 2500 and tokens == flat.size
    ends = np.flatnonzero(flat == 0)
    assert len(ends) == 2500 and ends[-1] == flat.size - 1
    second = flat[ends[0] + 1 : ends[1]].tolist()
    assert tokenizer.decode(second) == ptb_lines[1]


def test_dtype_follows_vocabulary() -> None:
    assert token_dtype(50257) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32


def test_load_tokenizer_errors(tmp_path: Path, ptb_lines: list[str]) -> None:
    with pytest.raises(DataError, match="no tokenizer at"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(DataError, match=r"not a valid tokenizer\.json"):
        load_tokenizer(tmp_path)
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"a": 0}, unk_token="a")).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(DataError, match="no <\\|endoftext\\|> token"):
        load_tokenizer(tmp_path / "tokenizer.json")
