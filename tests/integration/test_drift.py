"""Input drift end to end: a PTB-trained model registered, its eval storing the NLL reference on
PTB valid text in the version's record, served with every prompt sampled; PTB-like prompts
(PTB test lines) leave `lmforge monitor --drift` quiet, Python source raises its alarm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_env, corpus, run_cli
from tests.integration.servers import API_KEY, Server, wait_for

pytestmark = pytest.mark.integration
SOURCE = Path(__file__).resolve().parents[2] / "src" / "lmforge"


def ok(env: dict[str, str], *args: str) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def scored_tokens(server: Server) -> float:
    try:
        return server.metric("lmforge_prompt_nll_count")
    except KeyError:  # nothing scored yet
        return 0.0


def send(server: Server, prompts: list[str]) -> None:
    """Generate one token for each prompt, then wait until every prompt has been scored."""
    expected = scored_tokens(server)
    with server.client() as client:
        for prompt in prompts:
            answer = client.post("/v1/generate", json={"prompt": prompt, "max_new_tokens": 1})
            assert answer.status_code == 200, answer.text
            expected += client.post("/v1/tokenize", json={"text": prompt}).json()["count"] - 1
    wait_for(lambda: scored_tokens(server) >= expected, "the prompts to be scored", 30)


def monitor(env: dict[str, str], server: Server) -> tuple[int, dict]:
    result = run_cli("monitor", server.url, "--drift", "--count", "1", "--interval", "0.1", env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    (line,) = result.stdout.splitlines()
    return result.returncode, json.loads(line)


def test_python_source_raises_the_drift_alarm_and_ptb_does_not(
    teacher: Path, tmp_path: Path
) -> None:
    env = {**cli_env(), "LMFORGE_HOME": str(tmp_path / "home"), "LMFORGE_API_KEY": API_KEY}
    env.pop("MLFLOW_TRACKING_URI", None)
    ok(env, "registry", "register", str(teacher), "--name", "ptb")
    valid = tmp_path / "valid.txt"
    valid.write_text("\n".join(_lines("ptb/ptb.valid.txt", 400)) + "\n", encoding="utf-8")
    ok(env, "eval", "models:/ptb/1", "--perplexity", str(valid), "--report", str(tmp_path / "r"))
    assert json.loads((tmp_path / "r" / "drift.json").read_text())["tokens"] > 1000

    server = Server("models:/ptb/1", "--drift-sample", "1.0", env=env)
    try:
        # Cut to fit the tiny model's 64-token context (its 512-token vocabulary spends about
        # three tokens on a word).
        send(server, [" ".join(line.split()[:12]) for line in _lines("ptb/ptb.test.txt", 50)])
        code, normal = monitor(env, server)
        assert code == 0 and normal["drift"]["drifted"] is False, normal
        assert (
            normal["drift"]["psi"] is not None and normal["drift"]["reference"] == "models:/ptb/1"
        )
        assert server.metric('lmforge_prompt_nll_psi{model="ptb"}') == pytest.approx(
            normal["drift"]["psi"], abs=1e-3
        )

        python = [line.strip() for line in (SOURCE / "drift.py").read_text().splitlines()]
        python += [line.strip() for line in (SOURCE / "monitor.py").read_text().splitlines()]
        send(server, [line[:40] for line in python if len(line) > 20][:80])
        code, shifted = monitor(env, server)
        assert code == 1 and shifted["alarm"] is True and shifted["drift"]["drifted"] is True, (
            shifted
        )
        assert shifted["drift"]["psi"] > 0.25 > normal["drift"]["psi"], (normal, shifted)
    finally:
        server.stop()


def _lines(name: str, count: int) -> list[str]:
    lines = corpus(name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()][:count]
