"""Stages 1 and 2: normalize text, then filter out documents that are not useful prose."""

from __future__ import annotations

import html
import re
import textwrap
import unicodedata

from lmforge.data.document import Document, StageStats
from lmforge.hf import END_OF_TEXT

# Unicode's control characters (category Cc) and space separators (category Zs), listed
# rather than found by scanning all of Unicode, which cost 0.3 s at every start;
# tests/unit/test_clean.py checks both lists against unicodedata.
CONTROL_CHARACTERS = (*range(0x20), *range(0x7F, 0xA0))
SPACE_SEPARATORS = (0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
# Control characters (except newline and tab) and invisible format marks only confuse
# tokenization: dropped. Every other space separator becomes a plain space.
_DROP: dict[int, str | None] = dict.fromkeys(CONTROL_CHARACTERS)
for keep in ("\n", "\t"):
    _DROP.pop(ord(keep))
_DROP.update({0x200B: None, 0xFEFF: None, 0x00AD: None})
_SPACES = dict.fromkeys(SPACE_SEPARATORS, " ")
_TRANSLATION = {**_DROP, **_SPACES, ord("\t"): " "}

_RUNS_OF_SPACES = re.compile(r"(?<=\S) {2,}")
_TRAILING_SPACES = re.compile(r" +$", re.MULTILINE)
_MANY_NEWLINES = re.compile(r"\n{3,}")

# Deleted from ASCII text to count its letters: str.isalpha's count, a C loop, not a Python one.
_ASCII_NON_LETTERS = bytes(c for c in range(128) if not chr(c).isalpha())

_HTML_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
_WIKI_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_WIKI_HEADING = re.compile(r"^[ \t]*(=(?: ?=)*)[ \t]*(.*?)[ \t]*\1[ \t]*$", re.MULTILINE)
_WIKI_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")


def strip_markup(text: str) -> str:
    """Remove HTML tags/entities and wiki templates; keep heading and link text."""
    if "<" in text:
        text = _HTML_DROP_BLOCKS.sub(" ", text)
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    while "{{" in text:
        stripped = _WIKI_TEMPLATE.sub("", text)
        if stripped == text:
            break
        text = stripped
    if "=" in text:
        text = _WIKI_HEADING.sub(r"\2", text)
    if "[[" in text:
        text = _WIKI_LINK.sub(r"\1", text)
    return text


def normalize_text(text: str, *, markup: bool = False) -> str:
    """NFC, control characters removed, whitespace folded. Paragraph breaks and relative
    indentation (code in docs) are kept; indentation common to every line is removed."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if markup:
        text = strip_markup(text)
    text = text.translate(_TRANSLATION)
    # Each rewrite only where it can change something: most documents need none of them.
    if "  " in text:
        text = _RUNS_OF_SPACES.sub(" ", text)
    if " \n" in text or text.endswith(" "):
        text = _TRAILING_SPACES.sub("", text)
    if "\n\n\n" in text:
        text = _MANY_NEWLINES.sub("\n\n", text)
    if "\n" not in text:
        return text.strip()  # one line: all dedent would remove, strip does
    return textwrap.dedent(text).strip()


class Normalizer:
    """Stage 1. Literal `<|endoftext|>` strings are removed too: in the packed files that token
    separates documents, and text must not be able to forge a boundary."""

    def __init__(self, *, markup: bool = False) -> None:
        self.markup = markup
        self.stats = StageStats("normalize", details={"end_of_text_literals_removed": 0})

    def __call__(self, doc: Document) -> Document | None:
        text = doc.text
        if END_OF_TEXT in text:
            self.stats.details["end_of_text_literals_removed"] += text.count(END_OF_TEXT)
            text = text.replace(END_OF_TEXT, " ")
        text = normalize_text(text, markup=self.markup)
        if not text:
            self.stats.drop("empty", doc)
            return None
        doc.text = text
        return doc


def _letters(text: str) -> int:
    if text.isascii():
        return len(text.encode("ascii").translate(None, _ASCII_NON_LETTERS))
    return sum(map(str.isalpha, text))


class QualityFilter:
    """Stage 2: length bounds, fraction of letters, and repeated-line ratio."""

    def __init__(
        self,
        *,
        min_chars: int,
        max_chars: int,
        min_alpha_fraction: float,
        max_repeated_line_fraction: float,
    ) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.min_alpha = min_alpha_fraction
        self.max_repeated = max_repeated_line_fraction
        self.stats = StageStats("filter")

    def reason(self, text: str) -> str | None:
        """Why `text` should be dropped, or None to keep it."""
        if len(text) < self.min_chars:
            return "too_short"
        if len(text) > self.max_chars:
            return "too_long"
        visible = len(text) - text.count(" ") - text.count("\n")
        if visible and _letters(text) / visible < self.min_alpha:
            return "low_alpha_fraction"
        if "\n" in text:
            lines = [line for line in text.split("\n") if line]
            repeated = len(lines) - len(set(lines))
            if lines and repeated / len(lines) > self.max_repeated:
                return "repeated_lines"
        return None

    def __call__(self, doc: Document) -> Document | None:
        if (why := self.reason(doc.text)) is not None:
            self.stats.drop(why, doc)
            return None
        return doc
