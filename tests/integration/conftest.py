"""Fixtures shared by the integration tests: a small PTB dataset and a tiny trained teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import corpus, run_cli

TINY = ["--model-size", "tiny", "--batch-size", "8", "--context-length", "64", "--no-track"]


def card(model_dir: Path) -> dict:
    return json.loads((model_dir / "lmforge.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ptb_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PTB: 3,000 train lines and 200 lines each of its own valid and test splits."""
    root = tmp_path_factory.mktemp("ptb_small")
    for name, lines in (("train", 3000), ("valid", 200), ("test", 200)):
        text = corpus(f"ptb/ptb.{name}.txt").read_text(encoding="utf-8").splitlines()[:lines]
        (root / f"{name}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    out = root / "ds"
    result = run_cli(
        "data",
        "prepare",
        str(root / "train.txt"),
        "--valid-inputs",
        str(root / "valid.txt"),
        "--test-inputs",
        str(root / "test.txt"),
        "--vocab-size",
        "512",
        "--dedup",
        "none",
        "--min-chars",
        "1",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def teacher(ptb_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    result = run_cli(
        "train",
        "--data",
        str(ptb_small),
        "--output",
        str(out),
        *TINY,
        "--max-steps",
        "60",
        "--eval-steps",
        "20",
        "--learning-rate",
        "5e-3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out
