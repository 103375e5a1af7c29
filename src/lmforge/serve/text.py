"""Tokens to text for streaming: incremental detokenization that never emits half a UTF-8
character, and stop strings matched across token boundaries (and never emitted). Each token
costs the same however long the text has grown: only the last few ids are decoded, and stop
strings are looked for only in the text not yet shown (at most the longest stop string, plus
what the token added)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lmforge.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

REPLACEMENT = "\ufffd"


def load_tokenizer(model_dir: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelError(
            f"{model_dir} has no tokenizer.json",
            hint="serve a model dir written by lmforge or by a fast tokenizer's save_pretrained",
        )
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class StopMatcher:
    """Stop strings looked for in the unshown end of a text. A stop string can only begin
    there: whatever end of the shown text could still grow into one is held back."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.longest = max((len(s) for s in stops), default=0)
        # Every proper prefix of every stop string: the held-back end is found with at most
        # `longest` set lookups, whatever the number of stop strings.
        self.prefixes = {s[:n] for s in stops for n in range(1, len(s))}

    def first_hit(self, text: str) -> int | None:
        """Where the first stop string in `text` begins, if any does."""
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def held_back(self, text: str) -> int:
        """Length of the longest end of `text` that could still grow into a stop string."""
        for size in range(min(self.longest - 1, len(text)), 0, -1):
            if text[-size:] in self.prefixes:
                return size
        return 0


class Detokenizer:
    """Decodes a request's output ids as they grow and says which new text is safe to show:
    not an unfinished multi-byte character, not a prefix of a stop string.

    Only the ids from `prefix_offset` on are decoded: the text of the ids before
    `read_offset` is already known, and the ids just before it give the decoder the context
    it needs (a leading space, a character split across tokens)."""

    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.matcher = StopMatcher(stop)
        self.prefix_offset = 0
        self.read_offset = 0
        self.pending = ""  # decoded, not yet shown: held back, or cut off by a stop string

    def add(self, output_ids: list[int], final: bool = False) -> tuple[str, bool]:
        """(new safe text, whether a stop string was hit). After a hit, nothing after the
        stop string's start is ever shown."""
        new = self._decode_new(output_ids, final)
        if new is None:
            return "", False
        text = self.pending + new
        hit = self.matcher.first_hit(text) if self.matcher.stops else None
        if hit is not None:
            self.pending = text[:hit]
            return self.flush(), True
        safe = len(text) - self.matcher.held_back(text)
        self.pending = text[safe:]
        return text[:safe], False

    def flush(self) -> str:
        """What was held back: the request ends here, so it can no longer become a stop."""
        new, self.pending = self.pending, ""
        return new

    def _decode_new(self, output_ids: list[int], final: bool) -> str | None:
        """The text the ids from `read_offset` on add; None while it ends in an unfinished
        character (unless `final`: then that is text too)."""
        known = self.tokenizer.decode(
            output_ids[self.prefix_offset : self.read_offset], skip_special_tokens=True
        )
        grown = self.tokenizer.decode(output_ids[self.prefix_offset :], skip_special_tokens=True)
        if grown.endswith(REPLACEMENT) and not final:
            return None
        self.prefix_offset, self.read_offset = self.read_offset, len(output_ids)
        return grown[len(known) :]
