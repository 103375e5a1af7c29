"""The one model-reference resolver: what `--model`, `--init`, `--teacher` and `serve` accept.

- `models:/NAME@ALIAS`, `models:/NAME/VERSION`: pulled from the registry (verified) into the
  local cache;
- `hf:NAME`, where the caller allows it: a Hugging Face hub model, fetched from the network;
- anything else is a local model dir; a missing one is an error naming it, never a hub lookup
  (a mistyped `models/typo` must not go to the network).
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

HUB_PREFIX = "hf:"
_FORMS = "a model dir, models:/NAME@ALIAS, or hf:NAME for a Hugging Face hub model"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a reference's model is: a local dir (or, for a hub model, its hub name), the name
    it is served under, its registry version when it came from the registry, and whether it is
    a hub model."""

    location: str
    name: str
    version: str | None = None
    hub: bool = False

    @property
    def path(self) -> Path:
        return Path(self.location)


def resolve(ref: str, *, hub: bool = False) -> ResolvedModel:
    """Resolve `ref` to a local model dir; with `hub`, `hf:NAME` is a Hugging Face hub model."""
    if is_registry_ref(ref):
        from lmforge.registry.pull import pull

        path, version = pull(ref)
        return ResolvedModel(str(path), version.name, str(version.version))
    if ref.startswith(HUB_PREFIX):
        name = ref.removeprefix(HUB_PREFIX)
        if not hub:
            raise ModelError(f"{ref}: hub models cannot be used here", hint="give a model dir")
        if not name:
            raise ModelError(f"{ref}: name the hub model after hf:", hint="e.g. hf:gpt2")
        return ResolvedModel(name, name, hub=True)
    path = Path(ref).expanduser()
    if path.is_dir():
        return ResolvedModel(str(path), path.resolve().name)
    raise ModelError(f"model dir {ref} does not exist", hint=f"give {_FORMS}")


def open_model(
    ref: str, kind: ModelKind = "causal-lm", *, unverified: bool = False
) -> tuple[Any, Any, ModelCard | None]:
    """(model, tokenizer, card) of any reference that train and eval accept (`hf:` too);
    `unverified` lets a local dir without an `lmforge.json` load (`--unverified`)."""
    from lmforge.hf import load_pretrained

    model = resolve(ref, hub=True)
    return load_pretrained(model.location, kind, hub=model.hub, unverified=unverified)
