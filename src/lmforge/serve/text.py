"""Tokens to text for streaming: incremental detokenization that never emits half a UTF-8
character, and stop strings matched across token boundaries (and never emitted)."""

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


class Detokenizer:
    """Decodes a request's output ids as they grow and says which new text is safe to show:
    not an unfinished multi-byte character, not a prefix of a stop string."""

    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.longest_stop = max((len(s) for s in stop), default=0)
        self.text = ""
        self.emitted = 0

    def add(self, output_ids: list[int], final: bool = False) -> tuple[str, bool]:
        """(new safe text, whether a stop string was hit). After a hit, `text` ends before it."""
        text = self.tokenizer.decode(output_ids, skip_special_tokens=True)
        if text.endswith(REPLACEMENT) and not final:
            return "", False
        self.text = text
        if self.stop:
            begin = max(0, self.emitted - self.longest_stop + 1)
            hits = [i for i in (text.find(s, begin) for s in self.stop) if i >= 0]
            if hits:
                self.text = text[: min(hits)]
                return self.flush(), True
        safe = len(text) - self._held_back(text)
        new = text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return new, False

    def flush(self) -> str:
        new = self.text[self.emitted :]
        self.emitted = len(self.text)
        return new

    def _held_back(self, text: str) -> int:
        """Length of the longest end of `text` that could still grow into a stop string."""
        for size in range(min(self.longest_stop - 1, len(text)), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self.stop):
                return size
        return 0
