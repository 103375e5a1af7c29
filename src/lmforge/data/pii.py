"""Stage 3: PII and secret redaction to typed placeholders such as `<EMAIL>`.

The rules (patterns and the checks that confirm their matches) are in lmforge.data.pii_rules;
phone numbers are confirmed by libphonenumber in lmforge.data.phones. Every rule runs in time
linear in the document.
"""

from __future__ import annotations

import re
from collections import Counter

from lmforge.data.document import Document, StageStats
from lmforge.data.phones import contains_digit, phone_spans
from lmforge.data.pii_rules import RULES, Rule, iban_ok, luhn_ok

__all__ = ["PLACEHOLDERS", "PiiRedactor", "iban_ok", "luhn_ok", "redact"]

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
DEFAULT_PHONE_REGION = "US"


def _apply(rule: Rule, text: str, counts: Counter[str] | None) -> str:
    redact_group = "pii" in rule.pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if rule.valid is not None and not rule.valid(match):
            return found
        if counts is not None:
            counts[rule.kind] += 1
        if not redact_group:
            return PLACEHOLDERS[rule.kind]
        start, end = match.span("pii")
        offset = match.start()
        return found[: start - offset] + PLACEHOLDERS[rule.kind] + found[end - offset :]

    return rule.pattern.sub(replace, text)


def _redact_phones(text: str, region: str, counts: Counter[str] | None) -> str:
    parts: list[str] = []
    done = 0
    for start, end in phone_spans(text, region):
        parts += [text[done:start], PLACEHOLDERS["phone"]]
        done = end
        if counts is not None:
            counts["phone"] += 1
    return "".join(parts) + text[done:] if parts else text


def redact(
    text: str, counts: Counter[str] | None = None, phone_region: str = DEFAULT_PHONE_REGION
) -> str:
    """Replace every PII match with its placeholder; add per-kind counts to `counts`.

    `phone_region` (ISO 3166 code) is the country whose national phone format is assumed for
    numbers written without a country code.
    """
    has_digit = contains_digit(text)
    for rule in RULES:
        if rule.triggers and not any(map(text.__contains__, rule.triggers)):
            continue
        if rule.needs_digit and not has_digit:
            continue
        text = _apply(rule, text, counts)
    return _redact_phones(text, phone_region, counts) if has_digit else text


class PiiRedactor:
    """Stage 3. Examples in the manifest show the redacted text, never the PII itself."""

    def __init__(self, phone_region: str = DEFAULT_PHONE_REGION) -> None:
        self.phone_region = phone_region
        self.counts: Counter[str] = Counter()
        self.stats = StageStats("pii")

    def __call__(self, doc: Document) -> Document | None:
        before = sum(self.counts.values())
        doc.text = redact(doc.text, self.counts, self.phone_region)
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
