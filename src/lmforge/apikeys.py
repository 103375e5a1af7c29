"""API keys as the operator gives them: comma-separated in an environment variable, and the
checks every reader applies (the server's key ring and `deploy local`, which starts servers).
A core module, so the server and the deployment read keys the same way."""

from __future__ import annotations

import os

from lmforge.errors import ConfigError

# The marker of the example Secret's keys (deploy/k8s/base/secret.example.yaml): a copied
# placeholder is a key the whole world can read.
PLACEHOLDER = "replace-me"
MIN_LENGTH = 16
GENERATE_HINT = "generate keys with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def env_keys(variable: str) -> list[str]:
    """The keys in $VARIABLE: comma-separated, blanks dropped (so " , " holds none)."""
    return [key.strip() for key in os.environ.get(variable, "").split(",") if key.strip()]


def check_keys(keys: list[str], where: str) -> None:
    """Refuse the example's placeholder keys and keys too short to resist guessing."""
    if placeholders := [k for k in keys if PLACEHOLDER in k.lower()]:
        raise ConfigError(
            f"{where}: {len(placeholders)} key(s) are the example's placeholders "
            f"(containing {PLACEHOLDER!r})",
            hint=GENERATE_HINT,
        )
    if short := [k for k in keys if len(k) < MIN_LENGTH]:
        raise ConfigError(
            f"{where}: {len(short)} API key(s) shorter than {MIN_LENGTH} characters",
            hint=GENERATE_HINT,
        )
