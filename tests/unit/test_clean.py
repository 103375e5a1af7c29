from __future__ import annotations

import sys
import unicodedata

from lmforge.data.clean import (
    CONTROL_CHARACTERS,
    SPACE_SEPARATORS,
    Normalizer,
    QualityFilter,
    normalize_text,
    strip_markup,
)
from lmforge.data.document import Document
from tests.conftest import corpus


def test_normalize_nfc_controls_and_whitespace() -> None:
    text = "  Cafe\u0301\u00a0\u00a0bar\x07\r\n\r\n\r\n\tnext\u200b line  "
    assert normalize_text(text) == "Café bar\n\nnext line"


def test_normalize_keeps_relative_indentation() -> None:
    doc = "    Example:\n\n        if x:\n            return  1   \n"
    assert normalize_text(doc) == "Example:\n\n    if x:\n        return 1"


def test_normalize_keeps_paragraphs_of_real_text() -> None:
    raw = corpus("wikitext-2/wiki.valid.raw").read_text(encoding="utf-8")[:20000]
    clean = normalize_text(raw)
    assert "\n\n\n" not in clean and " \n" not in clean
    assert not any(line.startswith(" ") for line in clean.splitlines())
    assert clean.count("\n\n") > 5
    # Normalizing is idempotent.
    assert normalize_text(clean) == clean


def test_markup_stripping_on_wikitext_headings() -> None:
    raw = corpus("wikitext-2/wiki.valid.raw").read_text(encoding="utf-8")[:5000]
    assert " = Homarus gammarus = " in raw
    stripped = normalize_text(raw, markup=True)
    assert stripped.startswith("Homarus gammarus")
    assert " = = " not in stripped


def test_html_and_templates() -> None:
    html = (
        "<p>Fish &amp; chips</p><script>alert(1)</script> "
        "{{cite web|url={{x}}}} [[Paris|the capital]]"
    )
    assert " ".join(strip_markup(html).split()) == "Fish & chips the capital"


def test_normalizer_removes_forged_document_boundaries() -> None:
    stage = Normalizer()
    doc = stage(Document("hello <|endoftext|> world", "t:1", 0))
    assert doc is not None and doc.text == "hello world"
    assert stage.stats.details["end_of_text_literals_removed"] == 1
    assert stage(Document(" \x00 \t ", "t:2", 1)) is None
    assert stage.stats.removed["empty"] == 1


def test_quality_filter_reasons(ptb_lines: list[str]) -> None:
    keep = QualityFilter(
        min_chars=10, max_chars=200, min_alpha_fraction=0.5, max_repeated_line_fraction=0.3
    )
    assert keep.reason(ptb_lines[10]) is None
    assert keep.reason("short") == "too_short"
    assert keep.reason("x" * 201) == "too_long"
    assert keep.reason("1234 5678 90 !! ## 12") == "low_alpha_fraction"
    assert keep.reason("same line here\nsame line here\nsame line here\nother") == "repeated_lines"
    stage_doc = Document("short", "t:1", 0)
    assert keep(stage_doc) is None and keep.stats.removed["too_short"] == 1
    assert keep.stats.examples["too_short"] == ["t:1: short"]


def test_translation_tables_match_unicodedata() -> None:
    """The listed control and space-separator code points are exactly Unicode's Cc and Zs."""
    categories = [unicodedata.category(chr(c)) for c in range(sys.maxunicode + 1)]
    assert [c for c, cat in enumerate(categories) if cat == "Cc"] == list(CONTROL_CHARACTERS)
    assert [c for c, cat in enumerate(categories) if cat == "Zs"] == list(SPACE_SEPARATORS)
