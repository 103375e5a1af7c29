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
from collections.abc import Callable, Iterator
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


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll `condition` until it holds; after `timeout` seconds fail the test, naming what it
    waited for and showing the end of `log`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}".rstrip())
        time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    nginx_or_skip()
    run_dir = tmp_path_factory.mktemp("deploy")
    port = free_port()
    stderr = run_dir / "deploy.stderr"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "lmforge", "deploy", "local", str(tiny_model)),
            *("--workers", "2", "--port", str(port), "--run-dir", str(run_dir)),
            *("--max-body", "16k", "--rate-per-ip", "2000"),
        ],
        stderr=stderr.open("w"),
        env={**os.environ, "LMFORGE_API_KEYS": API_KEY, "LMFORGE_NO_PROGRESS": "1"},
    )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        """nginx answers /readyz through the workers and deploy.json (written just after nginx
        starts) names every worker: the state every test reads."""
        if process.poll() is not None:
            pytest.fail(
                f"lmforge deploy local exited with {process.returncode}:\n{stderr.read_text()}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        state = run_dir / "deploy.json"
        return state.exists() and all(w["pid"] for w in json.loads(state.read_text())["workers"])

    wait_for(serving, 180, "the deployment to serve through nginx", stderr)
    yield url, run_dir, process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, stderr.read_text()
