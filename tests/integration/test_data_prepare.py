"""`lmforge data prepare / inspect` end to end, as real subprocesses on real corpora."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli_env, corpus, run_cli

pytestmark = pytest.mark.integration
FILES = ("tokenizer.json", "train.bin", "valid.bin", "test.bin", "manifest.json")


@pytest.fixture(scope="module")
def ptb_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6,000 PTB lines plus copies of some of them far apart."""
    lines = corpus("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()[:6000]
    lines += lines[100:160] + [line + " indeed" for line in lines[200:230]]
    path = tmp_path_factory.mktemp("ptb") / "ptb_slice.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare(*args: str) -> subprocess.CompletedProcess:
    result = run_cli("data", "prepare", *args)
    assert result.returncode == 0, result.stderr
    return result


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text(encoding="utf-8"))


def test_ptb_slice_end_to_end(tmp_path: Path, ptb_slice: Path) -> None:
    out = tmp_path / "ds"
    result = prepare(
        str(ptb_slice), "--output", str(out), "--vocab-size", "2000", "--min-chars", "1"
    )
    assert "dedup removed: exact_duplicate" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    meta = manifest(out)
    dedup = next(s for s in meta["stages"] if s["name"] == "dedup")
    assert dedup["removed"]["exact_duplicate"] >= 60
    assert meta["tokenizer"]["vocab_size"] == 2000 and meta["dtype"] == "uint16"
    assert meta["sources"][0]["sha256"] and meta["sources"][0]["bytes"] == ptb_slice.stat().st_size
    tokens = np.fromfile(out / "train.bin", dtype=np.uint16)
    assert tokens.size == meta["splits"]["train"]["tokens"]
    assert int((tokens == 0).sum()) == meta["splits"]["train"]["documents"]
    total = sum(s["documents"] for s in meta["splits"].values())
    assert meta["splits"]["train"]["documents"] / total > 0.95

    shown = run_cli("data", "inspect", str(out), "--samples", "2")
    assert shown.returncode == 0, shown.stderr
    assert "all sha256 ok" in shown.stdout and "train sample 2" in shown.stdout

    # A flipped byte in a token file is caught by inspect.
    data = bytearray((out / "valid.bin").read_bytes())
    data[0] ^= 0xFF
    (out / "valid.bin").write_bytes(bytes(data))
    broken = run_cli("data", "inspect", str(out))
    assert broken.returncode == 1 and "sha256 mismatch" in broken.stdout


def test_sources_can_fix_the_splits(tmp_path: Path, ptb_slice: Path) -> None:
    """PTB's own valid/test files, unchanged: word counts match the published ones."""
    out = tmp_path / "ptb"
    prepare(
        str(ptb_slice),
        "--valid-inputs",
        str(corpus("ptb/ptb.valid.txt")),
        "--test-inputs",
        str(corpus("ptb/ptb.test.txt")),
        "--dedup",
        "none",
        "--min-chars",
        "1",
        "--min-alpha-fraction",
        "0",
        "--vocab-size",
        "1000",
        "--output",
        str(out),
    )
    splits = manifest(out)["splits"]
    assert splits["test"]["documents"] == 3761 and splits["test"]["words"] == 82430
    assert splits["valid"]["documents"] == 3370
    assert splits["train"]["documents"] == 6090


def test_builtin_corpus(tmp_path: Path) -> None:
    out = tmp_path / "pydocs"
    prepare("builtin:python-docs", "--output", str(out), "--vocab-size", "4096")
    meta = manifest(out)
    read = meta["stages"][0]
    assert read["chars_in"] > 1_500_000
    assert meta["splits"]["train"]["tokens"] > 300_000
    assert meta["sources"] == [
        {"spec": "builtin:python-docs", "sha256": meta["sources"][0]["sha256"]}
    ]


def test_same_input_gives_byte_identical_output(tmp_path: Path, ptb_slice: Path) -> None:
    for name in ("a", "b"):
        prepare(str(ptb_slice), "--output", str(tmp_path / name), "--vocab-size", "1000")
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_representative_sampling(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    prepare(
        str(corpus("sst2/dev_from_train.tsv")),
        "--text-column",
        "sentence",
        "--output",
        str(out),
        "--sample",
        "representative:16",
        "--sample-fraction",
        "0.1",
        "--vocab-size",
        "1000",
        "--min-chars",
        "1",
    )
    sample = next(s for s in manifest(out)["stages"] if s["name"] == "sample")
    assert sample["details"]["clusters"] == 16
    assert sample["docs_out"] == sample["details"]["budget"]
    assert abs(sample["docs_out"] - 0.1 * sample["docs_in"]) <= 1


def _partial_dirs(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path: Path, how: signal.Signals) -> None:
    out = tmp_path / "ds"
    command = [
        sys.executable,
        "-m",
        "lmforge",
        "data",
        "prepare",
        str(corpus("ptb/ptb.train.txt")),
        "--output",
        str(out),
    ]
    process = subprocess.Popen(command, env=cli_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _partial_dirs(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert not out.exists()
    if how == signal.SIGTERM:
        assert "stopped by SIGTERM" in stderr
        assert _partial_dirs(tmp_path) == []
    # The next run succeeds and sweeps away what a killed run left behind.
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a line of text long enough to keep\n" * 3 + "another line of text here\n")
    prepare(str(tiny), "--output", str(out), "--vocab-size", "300")
    assert _partial_dirs(tmp_path) == []


def test_bad_inputs_fail_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    junk = tmp_path / "junk.txt"
    junk.write_text("1 2\n!!\n")
    cases = [
        ([str(junk)], "empty corpus: no training documents are left after cleaning"),
        (["builtin:python-docs", "--vocab-size", "200"], "vocab_size: 200 is too small"),
        ([str(tmp_path / "absent.jsonl")], "input not found"),
    ]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine line of text"}\n{oops\n')
    cases.append(([str(bad_json), "--strict"], f"{bad_json}:2: not JSON"))
    for args, message in cases:
        result = run_cli("data", "prepare", *args, "--output", str(out))
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert not out.exists() and _partial_dirs(tmp_path) == []

    out.mkdir()
    (out / "keep.txt").write_text("precious")
    exists = run_cli("data", "prepare", "builtin:python-docs", "--output", str(out))
    assert (
        exists.returncode == 2 and "already exists" in exists.stderr and "--force" in exists.stderr
    )
    assert (out / "keep.txt").read_text() == "precious"
