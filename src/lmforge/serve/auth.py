"""API keys: read from a file or the environment, held only as SHA-256 hashes, and checked in
constant time against every known hash."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from lmforge.apikeys import check_keys, env_keys
from lmforge.errors import ConfigError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    def __init__(self, keys: list[str]) -> None:
        self._hashes = [_digest(k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def identify(self, key: str) -> str | None:
        """A short, non-secret id of the key (for rate limits and logs), or None if unknown.
        Every stored hash is compared, so timing says nothing about which one matched."""
        digest = _digest(key)
        found = None
        for known in self._hashes:
            if hmac.compare_digest(known, digest):
                found = known
        return found.hex()[:12] if found else None


def load_keys(path: str, env_var: str) -> KeyRing:
    """Keys from FILE (one per line; blank lines and # comments skipped) plus $ENV_VAR
    (comma-separated)."""
    keys = env_keys(env_var)
    if path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"api keys file {path} does not exist")
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                keys.append(line.strip())
    check_keys(keys, " + ".join(filter(None, (env_var, path))))
    return KeyRing(keys)
