"""Stop strings and incremental detokenization (serve/text.py): matches across tokens, the
earliest stop wins, held-back text is released, and the work per token stays the same however
long the text grows; the caps on stop strings (request.py)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from lmforge.serve.request import MAX_STOP_CHARS, MAX_STOPS, SamplingParams
from lmforge.serve.text import Detokenizer, StopMatcher, load_tokenizer


class CharTokenizer:
    """One character per id (its code point); records how many ids each decode is given."""

    def __init__(self) -> None:
        self.decoded: list[int] = []

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        self.decoded.append(len(ids))
        return "".join(chr(i) for i in ids)


def stream(text: str, stop: tuple[str, ...]) -> tuple[list[str], bool, Detokenizer]:
    """Feed `text` a character (token) at a time: the pieces shown and whether it stopped."""
    detokenizer = Detokenizer(CharTokenizer(), stop)  # type: ignore[arg-type]
    ids: list[int] = []
    shown: list[str] = []
    for char in text:
        ids.append(ord(char))
        new, hit = detokenizer.add(ids)
        shown.append(new)
        if hit:
            return shown, True, detokenizer
    shown.append(detokenizer.flush())
    return shown, False, detokenizer


def test_a_stop_string_across_tokens_ends_the_text_before_it() -> None:
    shown, hit, _ = stream("the cat sat. END here", ("END",))
    assert hit and "".join(shown) == "the cat sat. "
    # "E" and "EN" were held back (they could grow into the stop string), then dropped.
    assert shown[-4:] == [" ", "", "", ""]


def test_the_earliest_of_several_stops_wins_and_held_text_is_released() -> None:
    shown, hit, _ = stream("abxyz", ("yz", "bx"))
    assert hit and "".join(shown) == "a"
    shown, hit, _ = stream("ab ab", ("abc",))
    assert not hit and shown == ["", "", "ab ", "", "", "ab"]


def test_no_stops_shows_every_token_at_once() -> None:
    shown, hit, _ = stream("hello", ())
    assert not hit and shown == ["h", "e", "l", "l", "o", ""]


def test_work_per_token_does_not_grow_with_the_text() -> None:
    """The attack: long outputs against the most and longest stop strings allowed, built to
    keep almost-matching (the text is all "a"; each stop needs a "b" at its end)."""
    stops = tuple("a" * (MAX_STOP_CHARS - 1 - i) + "b" for i in range(MAX_STOPS))
    matcher = StopMatcher(stops)
    searched: list[int] = []
    first_hit, held_back = matcher.first_hit, matcher.held_back

    def counted_first_hit(text: str) -> int | None:
        searched.append(len(text))
        return first_hit(text)

    matcher.first_hit = counted_first_hit  # type: ignore[method-assign]
    tokenizer = CharTokenizer()
    detokenizer = Detokenizer(tokenizer, stops)  # type: ignore[arg-type]
    detokenizer.matcher = matcher
    ids: list[int] = []
    seconds: list[float] = []
    for _ in range(20_000):
        ids.append(ord("a"))
        started = time.perf_counter()
        assert detokenizer.add(ids) == ("a", False) or len(ids) < MAX_STOP_CHARS
        seconds.append(time.perf_counter() - started)
    # What each token decodes and searches is bounded by the longest stop, not the text.
    assert max(tokenizer.decoded) <= 2
    assert max(searched) <= MAX_STOP_CHARS
    assert held_back("a" * 10_000) == MAX_STOP_CHARS - 1
    # And so is its time: the last thousand tokens cost about what the first thousand did.
    early, late = sorted(seconds[1000:2000])[500], sorted(seconds[-1000:])[500]
    assert late < 3 * early + 20e-6, (early, late)


def test_an_unfinished_character_is_held_until_it_is_complete() -> None:
    class ByteTokenizer(CharTokenizer):
        def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
            self.decoded.append(len(ids))
            return bytes(ids).decode("utf-8", errors="replace")

    detokenizer = Detokenizer(ByteTokenizer())  # type: ignore[arg-type]
    ids = [*"漢".encode(), ord("x")]
    shown = [detokenizer.add(ids[: i + 1])[0] for i in range(len(ids))]
    assert shown == ["", "", "漢", "x"]
    cut = Detokenizer(ByteTokenizer())  # type: ignore[arg-type]
    assert cut.add(ids[:2]) == ("", False)
    assert cut.add(ids[:2], final=True) == ("\ufffd", False)  # the last token: shown as it is


@pytest.mark.parametrize(
    ("stop", "problem"),
    [
        (("x",) * (MAX_STOPS + 1), f"more than {MAX_STOPS} stop strings"),
        (("x" * (MAX_STOP_CHARS + 1),), f"over {MAX_STOP_CHARS} characters"),
        (("",), "must not be empty"),
    ],
)
def test_sampling_params_refuse_too_many_or_too_long_stops(
    stop: tuple[str, ...], problem: str
) -> None:
    problems = SamplingParams(stop=stop).problems()
    assert len(problems) == 1 and problem in problems[0]
    assert problems[0].startswith("stop=") and len(problems[0]) < 200
    assert SamplingParams(stop=("x" * MAX_STOP_CHARS,) * MAX_STOPS).problems() == []
    thirty_thousand = SamplingParams(stop=tuple(str(i) for i in range(30_000))).problems()
    assert len(thirty_thousand) == 1 and len(thirty_thousand[0]) < 200


def test_decoding_a_few_ids_at_a_time_shows_what_decoding_all_would(tiny_model: Path) -> None:
    """Random ids of a real byte-level tokenizer (characters split across tokens, invalid
    bytes, special tokens): the pieces add up to the whole decode, with or without stops."""
    tokenizer = load_tokenizer(tiny_model)
    vocab = tokenizer.get_vocab_size()
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 40))]
        whole = tokenizer.decode(ids, skip_special_tokens=True)
        stop = whole[len(whole) // 2 :][:3]
        for stops in ((), (stop,) if stop else ()):
            detokenizer = Detokenizer(tokenizer, stops)
            pieces, hit = [], False
            for end in range(1, len(ids) + 1):
                piece, hit = detokenizer.add(ids[:end], final=end == len(ids))
                pieces.append(piece)
                if hit:
                    break
            shown = "".join(pieces) + detokenizer.flush()
            assert shown == (whole[: whole.find(stop)] if stops else whole), (ids, stops)
            assert hit == bool(stops)
