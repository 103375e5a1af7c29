"""API keys: the server's key ring and `deploy local` read them the same way and refuse the
same bad ones (the example Secret's placeholders, keys too short, a set-but-empty variable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.apikeys import check_keys, env_keys
from lmforge.errors import ConfigError
from lmforge.serve.auth import load_keys

REAL = "k" * 32


def test_blank_entries_are_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEYS", " , ,, ")
    assert env_keys("SOME_KEYS") == []
    monkeypatch.setenv("SOME_KEYS", f" {REAL} ,")
    assert env_keys("SOME_KEYS") == [REAL]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["replace-me-with-a-real-key-0001"], "placeholders"),
        ([REAL, "Replace-Me-Too-xxxxxxxxxxxxxxx"], "placeholders"),
        (["short"], "shorter than 16"),
    ],
)
def test_bad_keys_are_refused(keys: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_keys(keys, "LMFORGE_API_KEYS")
    check_keys([REAL], "LMFORGE_API_KEYS")


def test_the_server_refuses_placeholder_keys_from_a_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the example's\n{REAL}\nreplace-me-xxxxxxxxxxxxxxxxxxxx\n", "utf-8")
    with pytest.raises(ConfigError, match="placeholders"):
        load_keys(str(keys), "NO_SUCH_VARIABLE")


def test_serve_refuses_the_example_secret_before_loading(tmp_path: Path) -> None:
    """The real CLI, as Kubernetes runs it with the example Secret's keys copied unchanged."""
    env = {**os.environ, "LMFORGE_API_KEYS": "replace-me-with-a-real-key-0001"}
    result = subprocess.run(
        [sys.executable, "-m", "lmforge", "serve", str(tmp_path / "no-model")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "placeholders" in result.stderr and "Traceback" not in result.stderr
