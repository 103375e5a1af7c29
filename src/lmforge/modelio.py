"""Verifying a model dir before anything loads it: safetensors weights only, and every file
matching the sha256 its `lmforge.json` card lists (see `lmforge.cards`). No torch (core)."""

from __future__ import annotations

import logging
from pathlib import Path

from lmforge.cards import CARD, WEIGHTS, ModelCard
from lmforge.errors import ModelError
from lmforge.fsutil import sha256_file

log = logging.getLogger(__name__)
# torch.load on these runs arbitrary code from the file: never load them.
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def refuse_pickle(model_dir: Path) -> None:
    pickled = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_WEIGHTS)
    if pickled:
        raise ModelError(
            f"{model_dir} holds pickle weights ({', '.join(pickled)}), which lmforge never loads",
            hint="convert them to model.safetensors (save_pretrained with safe_serialization)",
        )
    if not (model_dir / WEIGHTS).is_file() and not any(model_dir.glob("model-*.safetensors")):
        raise ModelError(f"{model_dir} has no {WEIGHTS}")


def file_problems(directory: Path, expected: dict[str, str], against: str) -> list[str]:
    """What is wrong with `directory` against expected sha256s: missing or changed files."""
    problems = []
    for name, digest in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match {against} (tampered or truncated)")
    return problems


def verify_model_dir(model_dir: Path) -> ModelCard | None:
    """Check a model dir before loading it: safetensors only, and every file matching its
    sha256 in `lmforge.json` (a dir without a card, e.g. a plain HF save, is only warned about).
    Returns the card."""
    if not model_dir.is_dir():
        raise ModelError(f"model dir {model_dir} does not exist")
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} is not a model dir: it has no config.json")
    refuse_pickle(model_dir)
    card = ModelCard.read(model_dir)
    if card is None:
        log.warning("%s has no %s: its files cannot be verified", model_dir, CARD)
        return None
    if problems := file_problems(model_dir, card.files, "its sha256"):
        raise ModelError(f"{model_dir} failed verification: " + "; ".join(problems))
    return card
