"""The regular-expression rules of PII redaction, and the checks that confirm their matches.

Every pattern runs in time linear in the text, because redaction sees untrusted documents of
up to a megabyte: each repeat is either bounded or possessive (`*+`, `{m,n}+`), and a pattern
that scans a run of characters may only start where such a run starts (a lookbehind), so no
run is scanned again from each of its positions. tests/integration/test_hostile_data.py times each
pattern on 1 MB inputs built to attack it.

Numbers that have a checksum are only redacted when it holds (Luhn for card numbers, ISO 7064
mod 97 for IBANs), IP addresses must parse, and a dotted quad in a version context is a version
(`_ipv4_ok`). Phone numbers are not here: lmforge.data.phones asks libphonenumber.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One kind of PII: a pattern, an optional check of each match, and cheap pre-tests.

    When the pattern has a group named `pii`, only that group is replaced (a `key = value`
    secret keeps its key); otherwise the whole match is.
    """

    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[re.Match[str]], bool] | None = None
    # The pattern cannot match a text that contains none of these (empty: no such test).
    # Most documents contain none, and `in` is far cheaper than a regex scan.
    triggers: tuple[str, ...] = ()
    needs_digit: bool = False


# A PEM block runs from BEGIN to its END line; without an END line (a truncated paste) it
# runs to the end of its block (a blank line) or of the document, so that half a key is
# never left in the text. The body stops at the next BEGIN, which keeps the scan linear when
# many BEGIN lines have no END.
_PEM_LABEL = r"(?:[A-Z0-9]{1,16}+ ){0,4}PRIVATE KEY-----"  # bounded: at most 5 tries
_PEM_BODY = r"(?>(?:(?!-----(?:END|BEGIN) )[\s\S])*+)"
_PEM_REST_OF_BLOCK = r"(?>(?:(?!\n[ \t]*+\n)[\s\S])*+)"
_PRIVATE_KEY = re.compile(
    "-----BEGIN "
    + _PEM_LABEL
    + "(?:"
    + _PEM_BODY
    + "-----END "
    + _PEM_LABEL
    + "|"
    + _PEM_REST_OF_BLOCK
    + ")"
)

# Tokens with a recognisable prefix. They may only start where a run of token characters
# starts: otherwise `eyJ-eyJ-...` restarts the JWT scan at each of its positions.
_TOKEN_START = r"(?<![A-Za-z0-9_-])"
_TOKENS = re.compile(
    _TOKEN_START + r"(?:"
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,255}+"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,255}+"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}+"  # Slack
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}+"  # OpenAI / Anthropic style
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}+"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}+"  # GitLab
    r"|eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+"  # JWT
    r")(?![A-Za-z0-9_-])"
)

# Every alternative of _TOKENS contains one of these literals (case-sensitive, as it is).
_TOKEN_LITERALS = (
    "AKIA",
    "gh",
    "github_pat_",
    "xox",
    "sk-",
    "k_live_",
    "k_test_",
    "AIza",
    "glpat-",
    "eyJ",
)

# `name = value` where the name says it holds a secret (aws_secret_access_key, DB_PASSWORD,
# "api-key": ...). The name is read whole (possessive, at most 64 characters, starting where
# an identifier starts) and checked afterwards, so no name is scanned twice.
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]{0,63}+)[\"']?+[ \t]{0,8}+(?::=|=>|[:=])[ \t]{0,8}+"
    r"[\"']?+(?P<pii>[^\s\"'`<>,;]{8,}+)"
)
_SECRET_NAME = re.compile(
    r"secret|token|passw(?:or)?d|pwd|api[_.-]?key|access[_.-]?key|private[_.-]?key"
    r"|credential|auth[_.-]?key|signing[_.-]?key|client[_.-]?key",
    re.IGNORECASE,
)
_COUNT_NAME = re.compile(r"(?:max|min|num|n)[_.-]|[_.-](?:count|len|length|limit|size)s?$", re.I)


def _assignment_ok(match: re.Match[str]) -> bool:
    name, value = match.group("name"), match.group("pii")
    if not _SECRET_NAME.search(name) or _COUNT_NAME.search(name):
        return False
    # A secret is not a plain word: it mixes cases, digits or symbols, or is long.
    return len(value) >= 16 or not (value.isalpha() and (value.islower() or value.isupper()))


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}+@(?:[A-Za-z0-9-]{1,63}+\.){1,8}[A-Za-z]{2,24}+"
    r"(?![\w-])"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# An IPv6 address with an embedded IPv4 tail (::ffff:192.0.2.128) is tried first, so that the
# plain form does not stop at the first dot and leave the IPv4 part behind.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,6}\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"
    r"|(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.-]{1,16}+)?(?![\w:]|\.\d)"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")


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


def _iban_ok(match: re.Match[str]) -> bool:
    return iban_ok(match.group(0))


def _card_ok(match: re.Match[str]) -> bool:
    found = match.group(0)
    digits = re.sub(r"\D", "", found)
    # Grouped numbers must be grouped as cards print them (4-4-4-4, 4-6-5, 4-4-4-4-3).
    groups = re.split(r"[ -]", found)
    grouped_like_card = len(groups) == 1 or (
        len(groups[0]) == 4 and all(3 <= len(g) <= 6 for g in groups)
    )
    return 13 <= len(digits) <= 19 and grouped_like_card and luhn_ok(digits)


def _parses_as_ip(found: str) -> bool:
    try:
        ipaddress.ip_address(found.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _ipv6_ok(match: re.Match[str]) -> bool:
    found = match.group(0)
    # Clock times like 12:30:45 parse as nothing, but "::" forms need at least one hex group.
    return found.count(":") >= 2 and any(c.isalnum() for c in found) and _parses_as_ip(found)


# The version rule. A dotted quad that parses as an address is still a version (or section)
# number when its context says so: a version or numbering word among the few words before it
# ("version 4.0.2.1", "release 10.0.19041.1", "build 6.1.7601.1", "section 3.2.1.4"), a `v`
# prefix, package-pin syntax or a package name joined to it ("pkg==4.0.2.1", "node@4.0.2.1",
# "lib-4.0.2.1"), or a pre-release or build suffix after it ("4.0.2.1-rc1", "4.0.2.1+cu121").
# Address context is not needed: a bare quad ("from 8.8.8.8", "host=10.0.0.1") is an address,
# as it usually is in logs and configs.
_VERSION_WORDS = frozenset(
    [
        "version",
        "versions",
        "ver",
        "release",
        "released",
        "releases",
        "build",
        "revision",
        "rev",
        "update",
        "updated",
        "updates",
        "upgrade",
        "upgraded",
        "downgrade",
        "downgraded",
        "patch",
        "firmware",
        "driver",
        "kernel",
        "sdk",
        "installed",
        "bump",
        "bumped",
        "chapter",
        "section",
        "clause",
        "article",
        "figure",
        "paragraph",
        "§",
    ]
)
_WORD = re.compile(r"[A-Za-z§]++")
# Attached to the number: "v4", "V.4", "==4", "~=4", "^4", "@4", "lib-4", "lib_4".
_VERSION_PREFIX = re.compile(r"(?:(?<![A-Za-z])[vV]\.?|[=~<>!]=|[\^~@]|[A-Za-z][-_])\Z")
_VERSION_SUFFIX = re.compile(r"[-+~][A-Za-z]")  # 4.0.2.1-rc1, 4.0.2.1+cu121


def _ipv4_ok(match: re.Match[str]) -> bool:
    if not _parses_as_ip(match.group(0)):
        return False
    text, start, end = match.string, match.start(), match.end()
    if _VERSION_PREFIX.search(text, max(0, start - 3), start):
        return False
    if _VERSION_SUFFIX.match(text, end, end + 6):
        return False
    # The version words among the three words before it, on the same line.
    before = text[max(0, start - 40) : start].rpartition("\n")[2]
    return not any(w.lower() in _VERSION_WORDS for w in _WORD.findall(before)[-3:])


# Order matters: longer, more specific shapes first so that e.g. a card number inside an
# IBAN is not reported twice.
RULES: tuple[Rule, ...] = (
    Rule("private_key", _PRIVATE_KEY, triggers=("PRIVATE KEY",)),
    Rule("secret", _TOKENS, triggers=_TOKEN_LITERALS),
    Rule("secret", _ASSIGNMENT, _assignment_ok, triggers=(":", "=")),
    Rule("email", _EMAIL, triggers=("@",)),
    Rule("iban", _IBAN, _iban_ok, needs_digit=True),
    Rule("credit_card", _CARD, _card_ok, needs_digit=True),
    Rule("ipv6", _IPV6, _ipv6_ok, triggers=(":",)),
    Rule("ipv4", _IPV4, _ipv4_ok, triggers=(".",), needs_digit=True),
)
