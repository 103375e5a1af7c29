"""`data prepare` over blocks on every core: byte-identical to the single-process pipeline it
replaced (a golden digest taken from it), whatever the worker count; an interrupted run
resumes from its finished blocks; the summary names what a default dropped."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, corpus, run_cli
from tests.integration.data_scale_corpus import dataset_digest, write_planted_corpus

pytestmark = pytest.mark.integration
# From the single-process pipeline (datasketch's MinHashLSH, commit 806c6ec) on the planted
# corpus, `--vocab-size 1000`, and with `--sample-fraction 0.5 --seed 7`.
GOLDEN = "52dfabda8df6814daa529534864a76197404cc97588edacae6c9a1c823b87c88"
GOLDEN_SAMPLED = "7a965d4898b98b6b50d737fab1ab593d2ce24975d00b432a90308a456f6f731a"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_planted_corpus(tmp_path_factory.mktemp("planted") / "planted.txt")


def prepare(*args: str) -> subprocess.CompletedProcess:
    result = run_cli("data", "prepare", *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize(
    ("workers", "block_docs", "extra", "golden"),
    [
        ("1", "2048", (), GOLDEN),
        ("2", "97", (), GOLDEN),
        ("2", "300", ("--sample-fraction", "0.5", "--seed", "7"), GOLDEN_SAMPLED),
    ],
)
def test_output_is_the_single_process_pipelines_whatever_the_workers(
    tmp_path: Path,
    planted: Path,
    workers: str,
    block_docs: str,
    extra: tuple[str, ...],
    golden: str,
) -> None:
    out = tmp_path / "ds"
    result = prepare(
        str(planted), "--output", str(out), "--vocab-size", "1000",
        "--workers", workers, "--block-docs", block_docs, *extra,
    )  # fmt: skip
    assert "near_duplicate" in result.stdout
    assert dataset_digest(out, planted) == golden
    assert not (tmp_path / ".ds.blocks").exists()


def test_killed_run_resumes_from_finished_blocks(tmp_path: Path) -> None:
    lines = corpus("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()[:5000]
    source = tmp_path / "ptb5k.txt"
    source.write_text("\n".join(lines + lines[:500]) + "\n", encoding="utf-8")
    args = [str(source), "--vocab-size", "1000", "--block-docs", "60", "--workers", "2"]
    out, cache = tmp_path / "ds", tmp_path / ".ds.blocks"
    command = [sys.executable, "-m", "lmforge", "data", "prepare", *args, "--output", str(out)]
    process = subprocess.Popen(command, env=cli_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if cache.is_dir() and len(list(cache.glob("*.pickle"))) >= 10:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()
    done = len(list(cache.glob("*.pickle")))

    resumed = prepare(*args, "--output", str(out))
    reused = re.search(r"resumed: ([\d,]+) blocks", resumed.stdout)
    assert reused is not None, resumed.stdout
    assert int(reused[1].replace(",", "")) >= done >= 10
    assert not cache.exists()
    fresh = tmp_path / "fresh"
    prepare(*args[:-1], "1", "--output", str(fresh))
    assert dataset_digest(out, source) == dataset_digest(fresh, source)


def test_summary_names_what_a_default_dropped(tmp_path: Path) -> None:
    play = [
        "FIRST CITIZEN:",
        "Before we proceed any further, hear me speak.",
        "ALL:",
        "Speak, speak.",
    ]
    source = tmp_path / "play.txt"
    source.write_text("\n".join(play * 40) + "\n", encoding="utf-8")
    result = prepare(
        str(source), "--output", str(tmp_path / "ds"), "--vocab-size", "300", "--dedup", "none"
    )
    assert "dropped: filter removed" in result.stdout
    assert "--txt-mode paragraph" in result.stdout and "--min-chars 0" in result.stdout


def test_the_local_engine_imports_no_ray() -> None:
    code = "import sys, lmforge.data.prepare; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=cli_env()).returncode == 0
