"""Seeded input perturbations for robustness: typos (swap, drop, repeat or replace a letter),
case changes, whitespace noise and punctuation noise, each touching about `rate` of the
words. A text's perturbation depends only on the text, the kind and the seed, so reruns and
baselines see exactly the same noisy inputs."""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable

from lmforge.evaluate.result import Perturb

PUNCTUATION = ",.;:!?'\"-"


def _rng(text: str, kind: str, seed: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\0{kind}\0{text}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _typo(word: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    if not letters:
        return word
    i = rng.choice(letters)
    edit = rng.randrange(4)
    if edit == 0 and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if edit == 1 and len(word) > 1:
        return word[:i] + word[i + 1 :]
    if edit == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1 :]


def _case(word: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.title, str.swapcase))(word)


def _punctuation(word: str, rng: random.Random) -> str:
    stripped = word.strip(PUNCTUATION)
    if stripped != word and rng.random() < 0.5:
        return stripped
    return word + rng.choice(PUNCTUATION)


def _per_word(
    edit: Callable[[str, random.Random], str], kind: str
) -> Callable[[str, float, int], str]:
    def perturb(text: str, rate: float, seed: int) -> str:
        rng = _rng(text, kind, seed)
        return " ".join(edit(w, rng) if rng.random() < rate else w for w in text.split(" "))

    return perturb


def _whitespace(text: str, rate: float, seed: int) -> str:
    """Doubles some spaces, drops others (joining words) and adds a stray newline or tab."""
    rng = _rng(text, "whitespace", seed)
    words = text.split(" ")
    out = [words[0]]
    for word in words[1:]:
        draw = rng.random()
        if draw < rate / 3:
            out[-1] += word
        elif draw < 2 * rate / 3:
            out.append(rng.choice(("  ", "\t", " \n")) + word)
        else:
            out.append(word)
    return " ".join(out)


KINDS: dict[str, Callable[[str, float, int], str]] = {
    "typos": _per_word(_typo, "typos"),
    "case": _per_word(_case, "case"),
    "whitespace": _whitespace,
    "punctuation": _per_word(_punctuation, "punctuation"),
}


def perturbation(kind: str, rate: float, seed: int) -> Perturb:
    apply = KINDS[kind]
    return lambda text: apply(text, rate, seed)


def ratios(clean: dict[str, float], noisy: dict[str, float], kind: str) -> dict[str, float]:
    """`{kind}_{metric}` and `{kind}_{metric}_ratio` (perturbed / clean) for every metric the
    clean run reported except counts."""
    out = {}
    for metric, value in noisy.items():
        if metric in ("examples", "tokens", "words", "bytes", "tokens_per_second", "threshold"):
            continue
        out[f"{kind}_{metric}"] = value
        base = clean.get(metric)
        if base:
            out[f"{kind}_{metric}_ratio"] = value / base
    return out
