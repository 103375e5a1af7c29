"""PII recall on a table of real-world shapes, and no false alarms on look-alikes."""

from __future__ import annotations

from collections import Counter

import pytest

from lmforge.data.document import Document
from lmforge.data.pii import PiiRedactor, iban_ok, luhn_ok, redact

POSITIVE = [
    ("write to jane.doe+news@example.co.uk today", "email"),
    ("Contact: ops@lmforge.io.", "email"),
    ("call +1 (555) 123-4567 now", "phone"),
    ("office 020 7946 0958 or", "phone"),
    ("tel. 555.123.4567", "phone"),
    ("ring +442079460958", "phone"),
    ("(030) 1234-5678 is Berlin", "phone"),
    ("server at 192.168.10.254 is down", "ipv4"),
    ("from 8.8.8.8.", "ipv4"),
    ("v6 2001:db8:85a3::8a2e:370:7334 works", "ipv6"),
    ("loopback ::1 and fe80::1%eth0", "ipv6"),
    ("card 4111 1111 1111 1111 expires", "credit_card"),
    ("amex 3782-822463-10005", "credit_card"),
    ("pay 5555555555554444 now", "credit_card"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "iban"),
    ("GB82WEST12345698765432", "iban"),
    ("aws AKIAIOSFODNN7EXAMPLE key", "secret"),
    ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "secret"),
    ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz123456", "secret"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret"),
    ("slack xoxb-123456789012-abcdefghijkl", "secret"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "secret"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "secret"),
    ("password: hunter2hunter2hunter2", "secret"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "private_key",
    ),
]

NEGATIVE = [
    "the year 1989 saw $ 100 million in sales",
    "pi is 3.14159 and e is 2.71828",
    "released on 2026-11-28 at 12:30:45",
    "meeting 10:30 - 11:45 in room 12",
    "call extension 4567",
    "4111 1111 1111 1112 fails the Luhn check",
    "DE00 1234 5678 9012 3456 78 has a wrong checksum",
    "scores 12-7, 21-3 and 14-10",
    "ISBN 978-3-16-148410-0",
    "version 2.0.1 of the library",
    "an @ sign alone, user@ and @host",
    "the ratio 999.999.999.999 is not an address",
    "a secret recipe and a token gesture",
    "mr. <unk> said the N N stake was sold for $ N million",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVE)
def test_recall(text: str, kind: str) -> None:
    counts: Counter = Counter()
    out = redact(text, counts)
    assert counts[kind] >= 1, (text, out, counts)
    assert out != text


@pytest.mark.parametrize("text", NEGATIVE)
def test_no_false_positives(text: str) -> None:
    counts: Counter = Counter()
    assert redact(text, counts) == text, counts


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB00 WEST 1234 5698 7654 32")


def test_placeholders_and_manifest_examples_hide_the_pii() -> None:
    stage = PiiRedactor()
    doc = stage(Document("mail bob@example.com or call +1 (555) 123-4567", "f:3", 0))
    assert doc is not None
    assert doc.text == "mail <EMAIL> or call <PHONE>"
    assert stage.stats.details["redactions"] == {"email": 1, "phone": 1}
    (example,) = stage.stats.examples["redacted"]
    assert "bob@example.com" not in example and "<EMAIL>" in example


def test_real_corpus_has_no_false_alarms(ptb_lines: list[str]) -> None:
    """PTB replaces numbers with N; nothing in it is PII."""
    counts: Counter = Counter()
    for line in ptb_lines:
        redact(line, counts)
    assert sum(counts.values()) == 0, counts
