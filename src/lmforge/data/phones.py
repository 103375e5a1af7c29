"""Phone numbers for PII redaction, confirmed by libphonenumber (the `phonenumbers` package).

A linear pattern finds runs of digits and phone punctuation; libphonenumber decides which are
numbers. A run is a phone number when
- it has a country code (`+49 30 901820`, `0049 ...`) and is a possible number there;
- it is a valid number of the default region (`--pii-phone-region`, US unless set), or a
  possible one written in the North American layout (`(555) 123-4567`, `555.123.4567`:
  libphonenumber calls the 555 range invalid, but it is what examples and fixtures use);
- it starts with a trunk prefix 0 (`030 1234-5678`, `01 42 68 53 00`, `03-1234-5678`) or a
  bracketed area code (`(11) 3456-7890`) and is valid in one of `NATIONAL_REGIONS`.
Dates, times, prices and version numbers are runs whose digits libphonenumber rejects. A run
with more digits than a number has is a list ("030 1234567 030 7654321") and is split into
numbers (`_numbers_in_list`), taking only unmistakable layouts from it.

Each lookup costs tens of microseconds, so a document gets a budget of lookups proportional to
its length (one per `_CHARS_PER_LOOKUP` characters, far above what prose holds). Past it the
remaining runs with a phone prefix (`+`, `(`, `0`) are redacted by shape alone: a document that
dense in phone-shaped runs is a crafted one or a directory, and failing closed keeps the cost
linear without letting numbers through.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import phonenumbers

NATIONAL_REGIONS = ("DE", "FR", "GB", "IN", "JP", "BR", "IT", "ES", "NL", "AU", "CN", "KR", "MX")
_NANP_REGIONS = {"US", "CA"}
_CHARS_PER_LOOKUP = 128
_MAX_RUN_CHARS = 32
_MAX_LIST_CHARS = 96
_MAX_GROUPS = 6

# Possessive throughout, and a run may not start inside another: one pass over the text.
_RUN = re.compile(r"(?<![\w+(.-])\(?\+?\d(?:[ ()./-]{0,3}+\d){6,}+")  # 7+ digits
_NANP_LAYOUT = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GROUP = re.compile(r"[^ /]++")
_ASCII_DIGIT = re.compile("[0-9]")


@functools.lru_cache(maxsize=4096)
def _confirmed(run: str, region: str) -> bool:
    digits = "".join(c for c in run if c.isdigit())
    international = run.lstrip("(").startswith("+") or digits.startswith("00")
    try:
        # "00" is the international prefix of most countries (the US dials 011 instead).
        number = phonenumbers.parse("+" + digits[2:] if digits.startswith("00") else run, region)
    except phonenumbers.NumberParseException:
        number = None
    if international:
        return number is not None and phonenumbers.is_possible_number(number)
    if number is not None and phonenumbers.is_valid_number(number):
        return True
    if (
        number is not None
        and region in _NANP_REGIONS
        and _NANP_LAYOUT.fullmatch(run)
        and phonenumbers.is_possible_number(number)
    ):
        return True
    # A national number of another country: written with its trunk prefix 0, or with the
    # area code in brackets where there is no trunk prefix to write ("(11) 3456-7890").
    if not (digits.startswith("0") or run.startswith("(")):
        return False
    national = int(digits.removeprefix("0"))
    for other in NATIONAL_REGIONS:
        code = phonenumbers.country_code_for_region(other)
        candidate = phonenumbers.PhoneNumber(country_code=code, national_number=national)
        if phonenumbers.is_valid_number_for_region(candidate, other):
            return True
    return False


def _shaped(run: str) -> bool:
    """Could be a phone number at all: 7 to 15 digits, not a date."""
    digits = sum(c.isdigit() for c in run)
    return 7 <= digits <= 15 and len(run) <= _MAX_RUN_CHARS and not _ISO_DATE.match(run)


class _Lookups:
    """The per-document budget of libphonenumber lookups (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.left = 16 + len(text) // _CHARS_PER_LOOKUP

    def is_phone(self, run: str, region: str) -> bool:
        if self.left > 0:
            self.left -= 1
            return _confirmed(run, region)
        return run[0] in "+(0"


def _listed(window: str) -> bool:
    """A window of a list is a number only in an unmistakable layout (a long run of grouped
    digits is more often a table row or an account number): a country code, a trunk prefix
    or brackets, or the North American layout; and a spaced slash separates numbers."""
    return (
        _shaped(window)
        and " /" not in window
        and "/ " not in window
        and (window[0] in "+(0" or bool(_NANP_LAYOUT.fullmatch(window)))
    )


def _numbers_in_list(run: str, region: str, lookups: _Lookups) -> Iterator[tuple[int, int]]:
    """Numbers in a run too long for one ("030 1234567 030 7654321"): from the left, a window
    of at most `_MAX_GROUPS` space- or slash-separated groups that is a number, preferring
    windows that end where the next number visibly starts (a `+`, `(` or `0`), longest first."""
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    first = 0
    while first < len(groups):
        ends = range(min(len(groups), first + _MAX_GROUPS), first, -1)
        at_boundary = [e for e in ends if e == len(groups) or run[groups[e][0]] in "+(0"]
        for last in [*at_boundary, *(e for e in ends if e not in at_boundary)]:
            window = run[groups[first][0] : groups[last - 1][1]]
            if _listed(window) and lookups.is_phone(window, region):
                yield groups[first][0], groups[last - 1][1]
                first = last
                break
        else:
            first += 1


def contains_digit(text: str) -> bool:
    """Whether any character is one str.isdigit accepts; in ASCII those are 0-9, found by
    one scan in C instead of a Python call per character."""
    if text.isascii():
        return _ASCII_DIGIT.search(text) is not None
    return any(map(str.isdigit, text))


def phone_spans(text: str, region: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each phone number in `text`, in order."""
    if not contains_digit(text):
        return
    lookups = _Lookups(text)
    for match in _RUN.finditer(text):
        run, start = match.group(0), match.start()
        if run.startswith("(") and ")" not in run:  # a bracket of the prose, not an area code
            run, start = run[1:], start + 1
        if _shaped(run):
            if lookups.is_phone(run, region):
                yield start, start + len(run)
        elif len(run) <= _MAX_LIST_CHARS:
            for begin, end in _numbers_in_list(run, region, lookups):
                yield start + begin, start + end
