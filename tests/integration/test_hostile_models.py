"""Hostile and careless model dirs, model references and registry names against the real CLI
(issue 17): files a card does not list, card paths and links out of the dir, dirs without a
card, mistyped paths that used to go to the Hugging Face hub, quotes in registry names, and a
registration killed half-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.cards import CARD, ModelCard
from lmforge.fsutil import sha256_file, write_json_atomic
from tests.conftest import build_model_dir, cli_env, run_cli

pytestmark = pytest.mark.integration
TYPO_HINT = "or hf:NAME for a Hugging Face hub model"


def home_env(tmp_path: Path) -> dict[str, str]:
    env = {**cli_env(), "LMFORGE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.fixture(scope="module")
def carded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model dir with an lmforge card over its files, as train writes one."""
    directory = build_model_dir(tmp_path_factory.mktemp("carded") / "model")
    ModelCard().write(directory)
    return directory


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat.\nhello world\n" * 4, encoding="utf-8")
    return path


def copy(model: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(model, target, symlinks=True)
    return target


def evaluate(env: dict[str, str], ref: str, text: Path, *extra: str) -> subprocess.CompletedProcess:
    report = text.parent / f"report-{time.monotonic_ns()}"
    return run_cli("eval", ref, "--perplexity", str(text), "--report", str(report), *extra, env=env)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("lmforge: error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_a_file_the_card_does_not_list_is_refused_by_eval(
    carded: Path, text: Path, tmp_path: Path
) -> None:
    """An added special_tokens_map.json made the tokenizer's EOS `the` and loaded as verified."""
    env = home_env(tmp_path)
    assert evaluate(env, str(carded), text).returncode == 0
    model = copy(carded, tmp_path)
    (model / "special_tokens_map.json").write_text(json.dumps({"eos_token": "the"}))
    result = evaluate(env, str(model), text)
    assert result.returncode == 4, result.stderr[-3000:]
    assert "special_tokens_map.json is not listed with its sha256" in one_line_error(result)


def test_card_paths_and_links_stay_inside_the_dir(carded: Path, text: Path, tmp_path: Path) -> None:
    """A card listing `../../etc/hostname` had that file read and hashed."""
    env = home_env(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    escaping = copy(carded, tmp_path, "escaping")
    raw = json.loads((escaping / CARD).read_text())
    raw["files"]["../secret.txt"] = sha256_file(secret)
    write_json_atomic(escaping / CARD, raw)
    for result in (
        evaluate(env, str(escaping), text),
        run_cli("registry", "register", str(escaping), "--name", "escaping", env=env),
    ):
        assert result.returncode == 4, result.stderr[-3000:]
        assert "'../secret.txt' is not a path inside the dir" in one_line_error(result)
    linked = copy(carded, tmp_path, "linked")
    (linked / "vocab.json").symlink_to(secret)
    raw = json.loads((linked / CARD).read_text())
    raw["files"]["vocab.json"] = sha256_file(secret)
    write_json_atomic(linked / CARD, raw)
    result = evaluate(env, str(linked), text)
    assert result.returncode == 4 and "symlink out of the model dir" in one_line_error(result)


def test_a_dir_without_a_card_is_refused_unless_unverified(
    carded: Path, text: Path, tmp_path: Path
) -> None:
    model = copy(carded, tmp_path, "plain")
    (model / CARD).unlink()
    result = evaluate(home_env(tmp_path), str(model), text)
    assert result.returncode == 4, result.stderr[-3000:]
    line = one_line_error(result)
    assert f"{model} has no lmforge.json" in line and "pass --unverified" in line

    from lmforge.registry.resolve import open_model

    _, tokenizer, card = open_model(str(model), unverified=True)
    assert card is None and tokenizer.eos_token == "<|endoftext|>"


def test_a_file_added_to_the_artifact_store_is_refused_by_pull(
    carded: Path, tmp_path: Path
) -> None:
    env = home_env(tmp_path)
    result = run_cli("registry", "register", str(carded), "--name", "tiny", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = next((tmp_path / "home" / "artifacts").glob(f"*/artifacts/model/{CARD}")).parent
    (stored / "special_tokens_map.json").write_text(json.dumps({"eos_token": "the"}))
    result = run_cli("registry", "pull", "tiny/1", env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    assert "special_tokens_map.json is not listed with its registered sha256" in one_line_error(
        result
    )
    assert not (tmp_path / "home" / "cache" / "tiny" / "1").exists()


class ProxyRecorder:
    """A loopback listener standing in for an HTTP(S) proxy: every connection is an attempt
    to leave the machine, recorded and closed."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.attempts = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.attempts += 1
            conn.close()

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k.upper() not in {"NO_PROXY", "HF_HUB_OFFLINE"}}
        env.pop("TRANSFORMERS_OFFLINE", None)
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[key] = env[key.lower()] = self.url
        return env


@pytest.fixture
def proxy() -> Iterator[ProxyRecorder]:
    recorder = ProxyRecorder()
    yield recorder
    recorder.server.close()


@pytest.mark.parametrize(
    ("verb", "typo"),
    [("eval", "models/typo"), ("train", "mymodel"), ("distill", "models/typo")],
)
def test_a_mistyped_path_fails_fast_without_the_network(
    verb: str, typo: str, ptb_small: Path, text: Path, tmp_path: Path, proxy: ProxyRecorder
) -> None:
    """`models/typo` was taken for a hub name and fetched, with 30 s of retries offline."""
    env = proxy.env(home_env(tmp_path))
    out = str(tmp_path / "out")
    args = {
        "eval": ["eval", typo, "--perplexity", str(text), "--report", out],
        "train": ["train", "--init", typo, "--data", str(ptb_small), "--output", out, "--no-track"],
        "distill": ["distill", "--teacher", typo, "--data", str(ptb_small), "--output", out],
    }[verb]
    started = time.monotonic()
    result = run_cli(*args, timeout=120, env=env)
    elapsed = time.monotonic() - started
    assert proxy.attempts == 0, f"{verb} tried to reach the network for {typo}"
    assert result.returncode == 4, result.stderr[-3000:]
    line = one_line_error(result)
    assert f"model dir {typo} does not exist" in line and TYPO_HINT in line
    assert elapsed < 20, f"{verb} took {elapsed:.1f}s to refuse a missing model dir"


@pytest.mark.parametrize("name", ["it's", "a'b", "x' OR name != '", "..", "a b", "a/b"])
def test_registry_names_that_would_break_a_filter_are_refused(
    carded: Path, tmp_path: Path, name: str
) -> None:
    env = home_env(tmp_path)
    result = run_cli("registry", "register", str(carded), "--name", name, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"bad registered model name {name!r}" in result.stderr
    if "/" not in name:  # NAME/VERSION: a slash is the version's separator in a ref
        shown = run_cli("registry", "show", f"{name}@production", env=env)
        assert shown.returncode == 5, shown.stderr[-3000:]
        assert f"bad registered model name {name!r}" in one_line_error(shown)


def _big_model_dir(tmp_path: Path, carded: Path) -> Path:
    """A verified model dir large enough that copying it to the artifact store takes a while:
    a registration can be killed in the middle of it."""
    model = copy(carded, tmp_path, "big")
    (model / CARD).unlink()
    shards = model / "extra"
    shards.mkdir()
    block = os.urandom(1 << 20)
    for i in range(150):
        (shards / f"shard-{i:04d}.txt").write_bytes(block * 2)
    ModelCard().write(model)
    return model


def _runs(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("select run_uuid, status from runs"))


def test_a_registration_killed_half_way_is_failed_and_cleaned_by_the_next(
    carded: Path, tmp_path: Path
) -> None:
    env = home_env(tmp_path)
    home = tmp_path / "home"
    model = _big_model_dir(tmp_path, carded)
    assert run_cli("registry", "list", env=env).returncode == 0  # create the store first
    killed = subprocess.Popen(
        [sys.executable, "-m", "lmforge", "registry", "register", str(model), "--name", "big"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not any((home / "artifacts").glob("*/artifacts/model/*")):
        assert killed.poll() is None and time.monotonic() < deadline, "register never copied"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    (stale,) = [run for run, status in _runs(home / "mlflow.db").items() if status == "RUNNING"]
    partial = next((home / "artifacts").glob(f"*{stale}/artifacts"))
    assert partial.is_dir()

    result = run_cli("registry", "register", str(carded), "--name", "big", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _runs(home / "mlflow.db")[stale] == "FAILED"
    assert not partial.exists()
    with sqlite3.connect(home / "mlflow.db") as conn:
        versions = conn.execute("select version, run_id from model_versions").fetchall()
    assert [run for _, run in versions].count(stale) == 0 and len(versions) == 1
