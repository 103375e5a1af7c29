"""Phone numbers for PII redaction, confirmed by libphonenumber (the `phonenumbers` package).

A linear pattern finds runs of digits and phone punctuation; libphonenumber decides which are
numbers. A run is a phone number when
- it has a country code (`+49 30 901820`, `0049 ...`) and is a possible number there;
- it is a valid number of the default region (`--pii-phone-region`, US unless set), or a
  possible one written in the North American layout (`(555) 123-4567`, `555.123.4567`:
  libphonenumber calls the 555 range invalid, but it is what examples and fixtures use);
- it starts with a trunk prefix 0 (`030 1234-5678`, `01 42 68 53 00`, `03-1234-5678`) or a
  bracketed area code (`(11) 3456-7890`) and is valid in one of `NATIONAL_REGIONS`.
Dates, times, prices and version numbers are runs whose digits libphonenumber rejects.

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

# Possessive throughout, and a run may not start inside another: one pass over the text.
_RUN = re.compile(r"(?<![\w+(.-])\(?\+?\d(?:[ ()./-]{0,3}+\d){6,}+")  # 7+ digits
_NANP_LAYOUT = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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


def _shaped(run: str, digits: int) -> bool:
    """Could be a phone number at all: 7 to 15 digits, not a date."""
    return 7 <= digits <= 15 and len(run) <= _MAX_RUN_CHARS and not _ISO_DATE.match(run)


def phone_spans(text: str, region: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each phone number in `text`, in order."""
    if not any(c.isdigit() for c in text):
        return
    budget = 16 + len(text) // _CHARS_PER_LOOKUP
    for match in _RUN.finditer(text):
        run, start, end = match.group(0), match.start(), match.end()
        if run.startswith("(") and ")" not in run:  # a bracket of the prose, not an area code
            run, start = run[1:], start + 1
        digits = sum(c.isdigit() for c in run)
        if not _shaped(run, digits):
            continue
        if budget > 0:
            budget -= 1
            if _confirmed(run, region):
                yield start, end
        elif run[0] in "+(0":
            yield start, end
