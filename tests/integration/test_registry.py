"""`lmforge registry` end to end: the embedded store, a real `mlflow server`, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.integration.conftest import card

pytestmark = pytest.mark.integration


def ok(env: dict[str, str], *args: str) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def student(teacher: Path, ptb_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distilled student whose card names the teacher's weights (for lineage)."""
    out = tmp_path_factory.mktemp("student") / "student"
    env = {**cli_env(), "LMFORGE_HOME": str(out.parent / "home")}
    ok(
        env,
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(ptb_small),
        "--output",
        str(out),
        "--batch-size",
        "8",
        "--max-steps",
        "10",
        "--eval-steps",
        "5",
        "--no-track",
    )
    return out


def home_env(tmp_path: Path) -> dict[str, str]:
    env = {**cli_env(), "LMFORGE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def full_flow(env: dict[str, str], teacher: Path, student: Path, home: Path) -> str:
    """register both → promote the better → the worse is refused → forced → rollback → pull.
    Returns the version left at @production."""
    assert "models:/ptb/1" in ok(env, "registry", "register", str(teacher), "--name", "ptb")
    registered = ok(env, "registry", "register", str(student), "--name", "ptb")
    assert "models:/ptb/2" in registered and "parent ptb/1" in registered
    losses = {
        "1": card(teacher)["metrics"]["valid_loss"],
        "2": card(student)["metrics"]["valid_loss"],
    }
    better, worse = sorted(losses, key=losses.get)
    gate = home / "gate.yaml"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.write_text("metrics:\n  valid_loss: {better: lower, max_regression: 0.0}\n")
    ok(env, "registry", "promote", "ptb", better, "--gate", str(gate))
    refused = run_cli("registry", "promote", "ptb", worse, "--gate", str(gate), env=env)
    assert refused.returncode == 8, refused.stdout  # the gate's own exit code
    assert "regressed" in refused.stdout and f"refused: v{worse} regresses" in refused.stderr
    verdict = run_cli("registry", "promote", "ptb", worse, "--gate", str(gate), "--json", env=env)
    assert verdict.returncode == 8 and f"refused: v{worse} regresses" in verdict.stderr
    document = json.loads(verdict.stdout)  # stdout is the one JSON document
    assert (document["moved"], document["previous"], document["version"]) == (False, better, worse)
    [row] = document["gate"]["rows"]
    assert (row["metric"], row["verdict"], row["better"]) == ("valid_loss", "regressed", "lower")
    assert row["baseline"] == losses[better] and row["candidate"] == losses[worse]
    assert document["gate"]["passed"] is False
    forced = ok(
        env,
        "registry",
        "promote",
        "ptb",
        worse,
        "--gate",
        str(gate),
        "--force",
        "--reason",
        "smaller for edge",
    )
    assert f"@production → v{worse}" in forced
    shown = ok(env, "registry", "show", "ptb@production")
    assert '"force_reason": "smaller for edge"' in shown
    described = json.loads(ok(env, "registry", "show", "ptb@production", "--json"))
    assert (described["version"], described["aliases"]) == (worse, ["production"])
    listed = json.loads(ok(env, "registry", "list", "ptb", "--json"))["versions"]
    assert [(v["version"], v["aliases"]) for v in listed] == sorted(
        [(worse, ["production"]), (better, [])]
    )
    assert '"parent": "ptb/1"' in ok(env, "registry", "show", "ptb/2")
    assert f"@production: v{worse} → v{better}" in ok(env, "registry", "rollback", "ptb")
    assert f"ptb/{better}: verified" in ok(env, "registry", "pull", "models:/ptb@production")
    files = card(teacher if better == "1" else student)["files"]
    assert all((home / "cache" / "ptb" / better / name).is_file() for name in files)
    assert "metrics.valid_loss" in ok(env, "registry", "diff", "ptb", "1", "2")
    return better


def test_full_flow_in_the_embedded_store(
    teacher: Path, student: Path, ptb_small: Path, tmp_path: Path
) -> None:
    env = home_env(tmp_path)
    production = full_flow(env, teacher, student, tmp_path / "home")
    other = "2" if production == "1" else "1"
    assert (tmp_path / "home" / "mlflow.db").is_file()

    # Training resolves registry references through the same verified pull.
    ok(
        env,
        "train",
        "--init",
        "models:/ptb@production",
        "--data",
        str(ptb_small),
        "--output",
        str(tmp_path / "tuned"),
        "--max-steps",
        "2",
        "--eval-steps",
        "2",
        "--batch-size",
        "8",
        "--no-track",
    )
    assert card(tmp_path / "tuned")["parent"]["model"] == "models:/ptb@production"

    # A tampered file is refused, naming the file.
    cached = tmp_path / "home" / "cache" / "ptb" / production / "model.safetensors"
    with open(cached, "r+b") as handle:
        handle.truncate(100)
    tampered = run_cli("registry", "pull", f"ptb/{production}", env=env)
    assert tampered.returncode == 5
    assert "model.safetensors does not match its registered sha256" in tampered.stderr

    held = run_cli("registry", "delete", "ptb", production, env=env)
    assert held.returncode == 5 and "holds @production" in held.stderr
    ok(env, "registry", "delete", "ptb", other)
    missing = run_cli("registry", "show", f"ptb/{other}", env=env)
    assert (
        missing.returncode == 5 and f"no version {other} (versions: {production})" in missing.stderr
    )
    unknown = run_cli("registry", "show", "nope@production", env=env)
    assert unknown.returncode == 5 and "no registered model 'nope'" in unknown.stderr


def test_register_refuses_unverifiable_dirs(teacher: Path, tmp_path: Path) -> None:
    env = home_env(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    (broken / "config.json").write_text((broken / "config.json").read_text() + " ")
    result = run_cli("registry", "register", str(broken), "--name", "x", env=env)
    assert result.returncode == 4 and "config.json does not match its sha256" in result.stderr
    (broken / "lmforge.json").unlink()
    result = run_cli("registry", "register", str(broken), "--name", "x", env=env)
    assert result.returncode == 5 and "has no lmforge.json" in result.stderr
    pickled = tmp_path / "pickled"
    shutil.copytree(teacher, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    result = run_cli("registry", "register", str(pickled), "--name", "x", env=env)
    assert result.returncode == 4 and "pickle weights (pytorch_model.bin)" in result.stderr


def test_concurrent_registrations_get_distinct_versions(teacher: Path, tmp_path: Path) -> None:
    env = home_env(tmp_path)
    ok(env, "registry", "list")  # create the store first, as a deployment would
    command = [sys.executable, "-m", "lmforge", "registry", "register", str(teacher), "--name", "c"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [o[1][-2000:] for o in outputs]
    versions = sorted(o[0].split("models:/c/")[1].split()[0] for o in outputs)
    assert versions == ["1", "2"]


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        **home_env(tmp_path),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    result = run_cli("registry", "list", env=env)
    assert result.returncode == 5
    assert "cannot reach the model registry at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_full_flow_against_a_real_mlflow_server(
    teacher: Path, student: Path, tmp_path: Path
) -> None:
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        env = {**home_env(tmp_path), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        full_flow(env, teacher, student, tmp_path / "home")
        assert not (tmp_path / "home" / "mlflow.db").exists()  # everything went to the server
        assert any((tmp_path / "server-artifacts").rglob("model.safetensors"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_follows_a_moved_alias_without_failing_a_request(
    teacher: Path, student: Path, tmp_path: Path
) -> None:
    """`serve models:/NAME@production --watch-alias 1`: promoting another version swaps the
    served model under load, and no request fails."""
    from tests.integration.servers import Server, steady_load

    env = home_env(tmp_path)
    ok(env, "registry", "register", str(teacher), "--name", "w")
    ok(env, "registry", "register", str(student), "--name", "w")
    ok(env, "registry", "promote", "w", "1")
    server = Server("models:/w@production", "--watch-alias", "1", env=env)
    try:
        with server.client() as client:
            assert client.get("/v1/models").json()["data"][0]["version"] == "1"
        with steady_load(server) as failures:
            ok(env, "registry", "promote", "w", "2", "--force", "--reason", "watch-alias test")
            deadline = time.monotonic() + 90
            with server.client() as client:
                while client.get("/v1/models").json()["data"][0]["version"] != "2":
                    assert time.monotonic() < deadline, server.stderr()
                    time.sleep(0.2)
                served = client.get("/v1/models").json()["data"][0]
        assert served["sha256"] == card(student)["files"]["model.safetensors"]
        assert failures == []
    finally:
        assert server.stop() == 0, server.stderr()
