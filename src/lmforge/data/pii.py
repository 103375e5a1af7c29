"""Stage 3: PII and secret redaction to typed placeholders such as `<EMAIL>`.

Candidates come from regular expressions; numbers that have a checksum are only redacted when
it holds (Luhn for card numbers, ISO 7064 mod 97 for IBANs) and IP addresses must parse, which
keeps prices, dates and version numbers in the text.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

from lmforge.data.document import Document, StageStats

PLACEHOLDERS = {
    "private_key": "<PRIVATE_KEY>",
    "secret": "<SECRET>",
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "credit_card": "<CREDIT_CARD>",
    "ipv6": "<IP_ADDRESS>",
    "ipv4": "<IP_ADDRESS>",
    "phone": "<PHONE>",
}

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    re.DOTALL,
)
_SECRET = re.compile(
    r"\b(?:"
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,255}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic style
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r")"
    # key=value assignments of things named like secrets
    r"|(?<![\w-])(?:api[_-]?key|secret|token|password|passwd)[\"']?\s*[:=]\s*[\"']?"
    r"[A-Za-z0-9_\-/+=.]{12,}",
    re.IGNORECASE,
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])"
    r"|(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,6}\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{2,4}[ .-])(?:\d{2,4}[ .-]){1,3}\d{2,4}"
    r"(?![\w-])"
    r"|(?<![\w+])\+[1-9]\d{7,13}(?!\w)"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def _card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    # Grouped numbers must be grouped as cards print them (4-4-4-4, 4-6-5, 4-4-4-4-3).
    groups = re.split(r"[ -]", match)
    grouped_like_card = len(groups) == 1 or (
        len(groups[0]) == 4 and all(3 <= len(g) <= 6 for g in groups)
    )
    return 13 <= len(digits) <= 19 and grouped_like_card and luhn_ok(digits)


def _ip_ok(match: str) -> bool:
    try:
        ipaddress.ip_address(match.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _ipv6_ok(match: str) -> bool:
    # Clock times like 12:30:45 parse as nothing, but "::" forms need at least one hex group.
    return match.count(":") >= 2 and any(c.isalnum() for c in match) and _ip_ok(match)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_US_DOTTED = re.compile(r"\(?\d{3}\)?\.\d{3}\.\d{4}")


def _phone_ok(match: str) -> bool:
    digits = sum(c.isdigit() for c in match)
    international = match.startswith("+")
    if not (8 if international else 10) <= digits <= 15 or _ISO_DATE.match(match):
        return False
    separators = set(re.findall(r"[ .-]", match.replace(") ", ")")))
    # Mixed separators ("2010-07-04 12") are dates and times unless the number has a country
    # code or an area code in parentheses; dots only in the US 555.123.4567 form (not IPs).
    if len(separators) > 1 and not (international or "(" in match):
        return False
    return "." not in separators or bool(_US_DOTTED.fullmatch(match))


# Order matters: longer, more specific shapes first so that e.g. a card number inside an
# IBAN is not reported twice.
_RULES: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("private_key", _PRIVATE_KEY, None),
    ("secret", _SECRET, None),
    ("email", _EMAIL, None),
    ("iban", _IBAN, iban_ok),
    ("credit_card", _CARD, _card_ok),
    ("ipv6", _IPV6, _ipv6_ok),
    ("ipv4", _IPV4, _ip_ok),
    ("phone", _PHONE, _phone_ok),
]
_TRIGGERS = {
    "private_key": "PRIVATE KEY",
    "email": "@",
    "ipv6": ":",
    "ipv4": ".",
}


def redact(text: str, counts: Counter[str] | None = None) -> str:
    """Replace every PII match with its placeholder; add per-kind counts to `counts`."""
    has_digit = any(c.isdigit() for c in text)
    for kind, pattern, valid in _RULES:
        trigger = _TRIGGERS.get(kind)
        if trigger is not None and trigger not in text:
            continue
        if kind in ("iban", "credit_card", "phone", "ipv4") and not has_digit:
            continue

        def replace(
            match: re.Match[str], kind: str = kind, valid: Callable[[str], bool] | None = valid
        ) -> str:
            found = match.group(0)
            if valid is not None and not valid(found):
                return found
            if counts is not None:
                counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text


class PiiRedactor:
    """Stage 3. Examples in the manifest show the redacted text, never the PII itself."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.stats = StageStats("pii")

    def __call__(self, doc: Document) -> Document | None:
        before = sum(self.counts.values())
        doc.text = redact(doc.text, self.counts)
        if sum(self.counts.values()) > before:
            self.stats.details["documents_redacted"] = (
                self.stats.details.get("documents_redacted", 0) + 1
            )
            shown = self.stats.examples.setdefault("redacted", [])
            if len(shown) < 3:
                placeholder = next(p for p in PLACEHOLDERS.values() if p in doc.text)
                at = doc.text.index(placeholder)
                shown.append(f"{doc.origin}: …{doc.text[max(0, at - 60) : at + 60]}…")
        self.stats.details["redactions"] = dict(sorted(self.counts.items()))
        return doc
