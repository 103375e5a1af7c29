"""Model dirs: what `save_pretrained` writes plus `lmforge.json` (sha256 of every file, dataset
manifest hash, training config, parent model, metrics). Loading verifies the hashes and refuses
pickle weights. No torch at import time (core module)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lmforge.errors import ModelError
from lmforge.fsutil import sha256_file, write_json_atomic

log = logging.getLogger(__name__)
CARD = "lmforge.json"
FORMAT = "lmforge.model/1"
# torch.load on these runs arbitrary code from the file: never load them.
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def file_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every file in the dir (relative paths), except the card itself."""
    return {
        str(path.relative_to(model_dir)): sha256_file(path)
        for path in sorted(model_dir.rglob("*"))
        if path.is_file() and path.name != CARD and not path.name.startswith(".")
    }


def write_card(model_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write `lmforge.json` over the dir's current files; returns the card."""
    card = {"format": FORMAT, **info, "files": file_hashes(model_dir)}
    write_json_atomic(model_dir / CARD, card)
    return card


def read_card(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / CARD
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is corrupt: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelError(f"{path} is not an lmforge model card ({FORMAT})")
    return card


def refuse_pickle(model_dir: Path) -> None:
    pickled = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_WEIGHTS)
    if pickled:
        raise ModelError(
            f"{model_dir} holds pickle weights ({', '.join(pickled)}), which lmforge never loads",
            hint="convert them to model.safetensors (save_pretrained with safe_serialization)",
        )
    if not (model_dir / "model.safetensors").is_file() and not any(
        model_dir.glob("model-*.safetensors")
    ):
        raise ModelError(f"{model_dir} has no model.safetensors")


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


def verify_model_dir(model_dir: Path) -> dict[str, Any] | None:
    """Check a model dir before loading it: safetensors only, and every file matching its
    sha256 in `lmforge.json` (a dir without a card, e.g. a plain HF save, is only warned about).
    Returns the card."""
    if not model_dir.is_dir():
        raise ModelError(f"model dir {model_dir} does not exist")
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} is not a model dir: it has no config.json")
    refuse_pickle(model_dir)
    card = read_card(model_dir)
    if card is None:
        log.warning("%s has no %s: its files cannot be verified", model_dir, CARD)
        return None
    if problems := file_problems(model_dir, card["files"], "its sha256"):
        raise ModelError(f"{model_dir} failed verification: " + "; ".join(problems))
    return card


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).exists() or ref.count("/") > 1
