"""The one model-reference resolver: what `--model`, `--init`, `--teacher` and `serve` accept.

- `models:/NAME@ALIAS`, `models:/NAME/VERSION`: pulled from the registry (verified) into the
  local cache;
- a model dir;
- where the caller allows it, a Hugging Face hub name the user gave (`gpt2`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.errors import ModelError
from lmforge.registry.refs import is_registry_ref

if TYPE_CHECKING:
    from lmforge.cards import ModelCard
    from lmforge.hf import ModelKind


@dataclass(frozen=True)
class ResolvedModel:
    """Where a reference's model is: a local dir (or, for a hub name, the name itself), the
    name it is served under, and its registry version when it came from the registry."""

    location: str
    name: str
    version: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.location)


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).exists() or ref.count("/") > 1


def resolve(ref: str, *, hub: bool = False) -> ResolvedModel:
    """Resolve `ref` to a local model dir; with `hub`, a name that is not a path is passed on
    to Hugging Face as a hub model."""
    if is_registry_ref(ref):
        from lmforge.registry.pull import pull

        path, version = pull(ref)
        return ResolvedModel(str(path), version.name, str(version.version))
    path = Path(ref).expanduser()
    if path.is_dir():
        return ResolvedModel(str(path), path.resolve().name)
    if hub and not looks_like_path(ref):
        return ResolvedModel(ref, ref)
    raise ModelError(f"model dir {ref} does not exist", hint="give a dir or models:/NAME@ALIAS")


def open_model(ref: str, kind: ModelKind = "causal-lm") -> tuple[Any, Any, ModelCard | None]:
    """(model, tokenizer, card) of any reference that train and eval accept (hub names too)."""
    from lmforge.hf import load_pretrained

    return load_pretrained(resolve(ref, hub=True).location, kind)
