"""Fixtures shared by the integration tests: a small PTB dataset, a tiny trained teacher, and
a `lmforge deploy local` deployment (real nginx in front of two workers)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import corpus, run_cli
from tests.integration.servers import API_KEY, free_port

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


def nginx_or_skip() -> None:
    from lmforge.deploy.local import NGINX_PATHS

    if not (shutil.which("nginx") or any(Path(p).exists() for p in NGINX_PATHS)):
        pytest.skip("nginx is not installed (.ci/run installs it with apt-get)")


@pytest.fixture(scope="module")
def deployment(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    nginx_or_skip()
    run_dir = tmp_path_factory.mktemp("deploy")
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "lmforge", "deploy", "local", str(tiny_model)),
            *("--workers", "2", "--port", str(port), "--run-dir", str(run_dir)),
            *("--max-body", "16k", "--rate-per-ip", "2000"),
        ],
        stderr=(run_dir / "deploy.stderr").open("w"),
        env={**os.environ, "LMFORGE_API_KEYS": API_KEY, "LMFORGE_NO_PROGRESS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            pytest.fail((run_dir / "deploy.stderr").read_text())
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (run_dir / "deploy.stderr").read_text()
        time.sleep(0.3)
    yield url, run_dir, process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, (run_dir / "deploy.stderr").read_text()
