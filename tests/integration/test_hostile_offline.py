"""Issue 17, offline and careless-operator cases, against the real CLI and a real server:
MLflow telemetry is off however lmforge is entered, no connection leaves loopback through a
whole model's life, `deploy local` refuses keys that protect nothing, and a `--force`
replacement killed between its two renames is undone by the next run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge import TELEMETRY_OFF
from tests.conftest import cli_env, corpus
from tests.integration.conftest import TINY
from tests.integration.servers import Server, free_port

pytestmark = pytest.mark.integration

# MLflow silences its telemetry by itself when one of these is set (pytest, CI services), so
# they are removed wherever a test must see what a user's machine would do.
CI_MARKERS = (
    "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL",
    "TRAVIS", "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE",
    "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID", "_MLFLOW_TESTING_TELEMETRY",
)  # fmt: skip


def user_env(**extra: str) -> dict[str, str]:
    """The CLI's environment as on a user's machine: no CI markers and no telemetry switches
    (a stray `false` even), so only lmforge itself can turn telemetry off."""
    env = {k: v for k, v in cli_env().items() if k not in CI_MARKERS and k not in TELEMETRY_OFF}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "false", **extra}


def python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


CLIENT = "from mlflow.telemetry import get_telemetry_client; print(get_telemetry_client())"


def test_importing_lmforge_switches_mlflow_telemetry_off() -> None:
    env = user_env()
    # The check can fail here: without lmforge, this environment gets a telemetry client.
    assert python(f"import mlflow; {CLIENT}", env) != "None"
    assert python(f"import lmforge, mlflow; {CLIENT}", env) == "None"
    # A program that imported mlflow first loses its client when it imports lmforge.
    assert python(f"import mlflow, lmforge; {CLIENT}", env) == "None"


# --- no connection leaves loopback ------------------------------------------------------------

# Loaded by every Python process that inherits PYTHONPATH (workers and their children too):
# records each DNS lookup of, and each connection to, anything not on loopback, including
# clients that ignore the proxy variables.
AUDIT = """
import ipaddress, os, sys

_LOG = os.environ["LMFORGE_TEST_EGRESS_LOG"]


def _local(host):
    if host in (None, "", "localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if not _local(host):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {event} {host!r} {' '.join(sys.argv)[:200]}\\n")


sys.addaudithook(_hook)
"""


class ProxyRecorder:
    """A loopback listener standing in for every proxy: it records the first line of each
    connection (`CONNECT host:443 ...`, `GET http://...`) and answers nothing useful."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(512).split(b"\r\n", 1)[0].decode(errors="replace"))
                    conn.sendall(b"HTTP/1.0 502 Bad Gateway\r\n\r\n")
                except OSError as exc:
                    self.seen.append(f"(connection, then {type(exc).__name__})")

    def env(self) -> dict[str, str]:
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        return {
            **{name: self.url for name in names},
            **{name.lower(): self.url for name in names},
            "NO_PROXY": "",
            "no_proxy": "",
        }


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for the CLI and servers: proxies at a recorder, the audit hook, a fresh
    embedded store. After the test, neither may have seen anything."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT, encoding="utf-8")
    egress = tmp_path / "egress.log"
    egress.touch()
    recorder = ProxyRecorder()
    path = os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH")) if p)
    env = user_env(
        **recorder.env(),
        PYTHONPATH=path,
        LMFORGE_TEST_EGRESS_LOG=str(egress),
        LMFORGE_HOME=str(tmp_path / "home"),
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    yield env
    recorder.sock.close()
    assert recorder.seen == [], f"connections through the proxy: {recorder.seen}"
    assert egress.read_text(encoding="utf-8") == "", "lookups or connections off loopback"


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lmforge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"lmforge {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result.stdout


def test_no_connection_leaves_loopback(
    offline: dict[str, str], ptb_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    train = ("train", "--data", str(ptb_small), "--output", str(model), *TINY)
    tracked = [arg for arg in train if arg != "--no-track"]
    cli(offline, *tracked, "--max-steps", "4", "--eval-steps", "4")
    assert "models:/offline/1" in cli(
        offline, "registry", "register", str(model), "--name", "offline"
    )
    assert "verified" in cli(offline, "registry", "pull", "models:/offline/1")
    text = tmp_path / "valid.txt"
    lines = corpus("ptb/ptb.valid.txt").read_text(encoding="utf-8").splitlines()[:50]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tmp_path / "report"
    cli(offline, "eval", "models:/offline/1", "--perplexity", str(text), "--report", str(report))
    assert (report / "report.json").is_file()
    # Server() passes this process's environment on; pytest sets a marker in it per phase.
    for name in CI_MARKERS:
        monkeypatch.delenv(name, raising=False)
    server = Server("models:/offline/1", env=offline)
    try:
        with server.client() as client:
            answer = client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 4})
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0, server.stderr()


# --- deploy local refuses keys that protect nothing -------------------------------------------

SECRET = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "secret.example.yaml"


def deploy_local(tmp_path: Path, model: Path, **keys: str) -> subprocess.CompletedProcess[str]:
    """`deploy local` on all interfaces. Refused, it exits at once; if it were not, the short
    startup timeout stops it (exit 1) before any worker is reachable from outside."""
    command = [sys.executable, "-m", "lmforge", "deploy", "local", str(model), "--host"]
    command += ["0.0.0.0", "--port", str(free_port()), "--run-dir", str(tmp_path / "run")]
    command += ["--startup-timeout", "1", "--workers", "1"]
    env = {
        k: v for k, v in cli_env().items() if k not in ("LMFORGE_API_KEYS", "LMFORGE_ADMIN_KEYS")
    }
    return subprocess.run(command, env={**env, **keys}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("keys", [" , ", "", ",,"])
def test_deploy_local_refuses_api_keys_that_hold_no_key(
    keys: str, tiny_model: Path, tmp_path: Path
) -> None:
    result = deploy_local(tmp_path, tiny_model, LMFORGE_API_KEYS=keys)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing to expose 0.0.0.0 without API keys" in result.stderr
    assert f"LMFORGE_API_KEYS holds no key ({keys!r})" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before any worker started


def test_deploy_local_refuses_the_example_secrets_placeholder_keys(
    tiny_model: Path, tmp_path: Path
) -> None:
    import yaml

    example = yaml.safe_load(SECRET.read_text(encoding="utf-8"))["stringData"]
    for variable, value in (
        ("LMFORGE_API_KEYS", example["api-keys"]),
        ("LMFORGE_ADMIN_KEYS", example["admin-keys"]),
    ):
        keys = {"LMFORGE_API_KEYS": "a-real-key-0123456789abcdef", variable: value}
        result = deploy_local(tmp_path, tiny_model, **keys)
        assert result.returncode == 2, result.stderr[-2000:]
        count = len(value.split(","))
        assert f"{variable}: {count} key(s) are the example's placeholders" in result.stderr
        assert not (tmp_path / "run").exists()


# --- a --force replacement killed between its two renames -------------------------------------

# Runs the real CLI, but SIGKILLs itself right after atomic_dir moved the old output aside and
# before the new one takes its place: the worst moment for a kill.
KILL_BETWEEN_RENAMES = """
import os, signal, sys

rename = os.replace


def replace(src, dst):
    rename(src, dst)
    if ".old-" in os.fspath(dst):
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = replace
from lmforge.cli import main

main(sys.argv[1:])
"""


def test_a_force_replacement_killed_between_its_renames_is_undone(tmp_path: Path) -> None:
    lines = corpus("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()
    for name, part in (("train", lines[:400]), ("valid", lines[400:460]), ("test", lines[460:520])):
        (tmp_path / f"{name}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")
    out = tmp_path / "ds"
    prepare = ["data", "prepare", str(tmp_path / "train.txt"), "--output", str(out)]
    prepare += ["--valid-inputs", str(tmp_path / "valid.txt"), "--test-inputs"]
    prepare += [str(tmp_path / "test.txt"), "--vocab-size", "300", "--dedup", "none"]

    def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *(("-c", code) if code else ("-m", "lmforge")), *args]
        return subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)

    assert run(*prepare).returncode == 0
    first = (out / "manifest.json").read_text(encoding="utf-8")
    killed = run(*prepare, "--force", "--seed", "7", code=KILL_BETWEEN_RENAMES)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists() and [p.name for p in tmp_path.glob(".ds.old-*")]

    # Without --force the old output is put back (the replacement never happened) and kept.
    kept = run(*prepare)
    assert kept.returncode == 2 and f"output {out} already exists" in kept.stderr
    assert (out / "manifest.json").read_text(encoding="utf-8") == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []

    # Killed again, a --force run then replaces it and leaves nothing beside it.
    assert run(*prepare, "--force", "--seed", "7", code=KILL_BETWEEN_RENAMES).returncode < 0
    replaced = run(*prepare, "--force", "--seed", "7")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []
