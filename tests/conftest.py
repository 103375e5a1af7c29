"""Shared fixtures: the real corpora in ../shared/data and a helper that runs the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def corpus(relative: str) -> Path:
    """A file from ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared corpus {path} is absent (see shared/data/SOURCES.md)")
    return path


def cli_env() -> dict[str, str]:
    return {**os.environ, "LMFORGE_NO_PROGRESS": "1", "COLUMNS": "120"}


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run `python -m lmforge ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "lmforge", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(),
        timeout=timeout,
    )


@pytest.fixture
def ptb_lines() -> list[str]:
    with open(corpus("ptb/ptb.train.txt"), encoding="utf-8") as handle:
        return [line.strip() for _, line in zip(range(3000), handle, strict=False)]
