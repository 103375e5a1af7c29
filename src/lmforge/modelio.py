"""Verifying a model dir before anything loads it: safetensors weights only, every file inside
the dir, listed with its sha256 (in its `lmforge.json` card, see `lmforge.cards`, or in the
registry's tags) and matching it, and no file that the list leaves out: a loader picks up any
file it knows by name (an added `special_tokens_map.json` changes the tokenizer). No torch
(core)."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from lmforge.cards import CARD, WEIGHTS, ModelCard, content_files
from lmforge.errors import ModelError
from lmforge.fsutil import sha256_file

log = logging.getLogger(__name__)
# torch.load on these runs arbitrary code from the file: never load them.
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
UNVERIFIED_HINT = "pass --unverified to load a plain Hugging Face dir you made yourself"


def refuse_pickle(model_dir: Path) -> None:
    pickled = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_WEIGHTS)
    if pickled:
        raise ModelError(
            f"{model_dir} holds pickle weights ({', '.join(pickled)}), which lmforge never loads",
            hint="convert them to model.safetensors (save_pretrained with safe_serialization)",
        )
    if not (model_dir / WEIGHTS).is_file() and not any(model_dir.glob("model-*.safetensors")):
        raise ModelError(f"{model_dir} has no {WEIGHTS}")


def inside(directory: Path, name: str) -> Path | None:
    """`directory / name` when the listed name stays inside the dir (relative, no `..`, no
    symlink out of it), else None: a list from a card or a tag must not reach other files."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name:
        return None
    path = directory / pure
    return path if path.resolve().is_relative_to(directory.resolve()) else None


def file_problems(directory: Path, expected: dict[str, str], against: str) -> list[str]:
    """What is wrong with `directory` against expected sha256s: listed paths outside the dir,
    missing or changed files, and files the list does not have."""
    problems = []
    for name, digest in sorted(expected.items()):
        path = inside(directory, name)
        if path is None:
            problems.append(f"{name!r} is not a path inside the dir")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match {against} (tampered or truncated)")
    unlisted = sorted(set(content_files(directory)) - set(expected))
    problems += [
        f"{name} is not listed with {against} (added after it was made)" for name in unlisted
    ]
    return problems


def _check_dir(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise ModelError(f"model dir {model_dir} does not exist")
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} is not a model dir: it has no config.json")
    refuse_pickle(model_dir)


def verified_card(model_dir: Path) -> ModelCard:
    """The card of a model dir that holds safetensors only and exactly the files its
    `lmforge.json` lists, each matching its sha256; anything else is refused."""
    _check_dir(model_dir)
    card = ModelCard.read(model_dir)
    if card is None:
        raise ModelError(
            f"{model_dir} has no {CARD}, so its files cannot be verified", hint=UNVERIFIED_HINT
        )
    if problems := file_problems(model_dir, card.files, "its sha256"):
        raise ModelError(
            f"{model_dir} failed verification: " + "; ".join(problems),
            hint="remove files you added, or rebuild the model dir",
        )
    return card


def verify_model_dir(model_dir: Path, *, unverified: bool = False) -> ModelCard | None:
    """Check a model dir before loading it (`verified_card`). With `unverified`, which the
    user passes for a plain HF dir they made, a dir without a card loads with a warning (still
    safetensors only, and nothing read through a link out of the dir); returns its card."""
    if not unverified or (model_dir / CARD).is_file():
        return verified_card(model_dir)
    _check_dir(model_dir)
    content_files(model_dir)
    log.warning("%s has no %s: loading it unverified, as asked", model_dir, CARD)
    return None
