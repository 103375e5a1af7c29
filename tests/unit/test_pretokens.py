from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer, normalizers

from lmforge.data import pretokens
from lmforge.data.pretokens import PackingEncoder, splits_like_gpt2
from lmforge.data.tokenizer import END_OF_TEXT, train_bpe, train_char
from tests.conftest import corpus

# Where the pretokenizer's rules meet: contractions (lower case only), runs of spaces before
# a word or at the end, digits against letters, punctuation runs, the end-of-text token
# written out, and text the cache leaves to the tokenizer (non-ASCII, tabs, newlines).
EDGES = [
    "",
    " ",
    "   ",
    "a",
    "it's they'll I'M we'VE 'd''s ''",
    "two  spaces   three    four     end  ",
    "x1y22z333 4.5e-3 1,000,000 $ 12 %",
    "!!! ?? ... --- (a) [b] {c} <d> @e #f ~g `h` ^i |j| \\k",
    " leading space",
    "trailing space ",
    "mid <|endoftext|> document",
    "<|endoftext|>",
    "naïve café 😀 — unicode",
    "tab\tseparated\tfields",
    "two\nlines",
    "carriage\rreturn",
]


def _reference(tokenizer: Tokenizer, texts: list[str], eot: int) -> list[int]:
    out: list[int] = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        out += [*enc.ids, eot]
    return out


def test_ids_are_the_tokenizers_on_edges_random_text_and_real_corpora(
    ptb_lines: list[str],
) -> None:
    tokenizer = train_bpe(ptb_lines, vocab_size=600, min_frequency=2)
    eot = tokenizer.token_to_id(END_OF_TEXT)
    encoder = PackingEncoder(tokenizer, eot, np.dtype(np.uint16))
    assert encoder.cached
    rng = random.Random(0)
    alphabet = " " * 6 + "'" * 3 + 'stremvdlSTREMVDL09xyz.,!-"$' + "<|>"
    randoms = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(3000)]
    wiki = corpus("wikitext-2/wiki.valid.raw").read_text(encoding="utf-8").splitlines()
    for texts in (EDGES, randoms, ptb_lines[:3000], wiki[:3000]):
        assert encoder.packed(texts).tolist() == _reference(tokenizer, texts, eot)
    assert encoder._ids  # the printable-ASCII texts went through the cache
    # A second pass is served from the cache: the same ids.
    assert encoder.packed(randoms).tolist() == _reference(tokenizer, randoms, eot)


def test_a_full_cache_starts_again_and_stays_exact(
    monkeypatch: pytest.MonkeyPatch, ptb_lines: list[str]
) -> None:
    monkeypatch.setattr(pretokens, "MAX_CACHED", 50)
    tokenizer = train_bpe(ptb_lines, vocab_size=400, min_frequency=2)
    encoder = PackingEncoder(tokenizer, 0, np.dtype(np.uint16))
    for start in range(0, 400, 100):
        texts = ptb_lines[start : start + 100]
        assert encoder.packed(texts).tolist() == _reference(tokenizer, texts, 0)
        batch = {piece for text in texts for piece in pretokens._PRETOKEN.findall(text)}
        assert len(encoder._ids) <= max(50, len(batch))


def test_other_tokenizers_encode_everything_themselves(ptb_lines: list[str]) -> None:
    char = train_char(ptb_lines[:200])
    assert not splits_like_gpt2(char)
    lowered = train_bpe(ptb_lines[:500], vocab_size=300, min_frequency=2)
    lowered.normalizer = normalizers.Lowercase()
    assert not splits_like_gpt2(lowered)
    for tokenizer in (char, lowered):
        encoder = PackingEncoder(tokenizer, 0, np.dtype(np.uint32))
        texts = ["Mixed Case text", *ptb_lines[:50]]
        assert encoder.packed(texts).tolist() == _reference(tokenizer, texts, 0)
        assert not encoder._ids
