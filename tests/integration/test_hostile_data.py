"""Hostile and careless input to the data pipeline and training, against the real code.

- Crafted 1 MB documents, one family per PII pattern, built to make that pattern backtrack or
  rescan: redaction must stay linear (it was quadratic: `'eyJ-' * 12500` took 15.6 s).
- A Latin-1 corpus: the console says how many bytes were replaced and where the first is.
- Progress when stderr is a pipe: a line at an interval, not silence until the end.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lmforge.data.pii import redact
from tests.conftest import cli_env
from tests.integration.conftest import TINY

pytestmark = pytest.mark.integration
MB = 1_000_000


def fill(unit: str) -> str:
    return (unit * (MB // len(unit) + 1))[:MB]


def phone_shaped_runs() -> str:
    """Distinct trunk-prefixed digit runs, each one a libphonenumber lookup."""
    rng = random.Random(0)
    runs = (f"0{rng.randrange(10**9):09d} x " for _ in range(MB // 13 + 1))
    return "".join(runs)[:MB]


ATTACKS: dict[str, Callable[[], str]] = {
    "private_key: BEGIN lines, no END": lambda: fill("-----BEGIN PRIVATE KEY-----\n"),
    "private_key: one BEGIN, many wrong ENDs": lambda: (
        "-----BEGIN RSA PRIVATE KEY-----" + fill("-----END X")
    ),
    "private_key: long label": lambda: fill("-----BEGIN A B C D E "),
    "jwt: eyJ- run": lambda: fill("eyJ-"),
    "jwt: two segments, never three": lambda: fill("eyJaaaaaaaaa.eyJ"),
    "tokens: prefixes without bodies": lambda: fill("ghp_sk-xoxb-glpat-"),
    "assignment: names without values": lambda: fill("token="),
    "assignment: a name longer than any": lambda: fill("x") + "=aaaaaaaaaaaaaaaaaaa",
    "email: @ run": lambda: fill("a@"),
    "email: endless domain": lambda: "a@" + fill("a."),
    "email: endless local part": lambda: fill("a.") + "@",
    "iban: prefixes": lambda: fill("DE89 "),
    "iban: endless groups": lambda: "DE89" + fill(" 1234"),
    "credit_card: spaced digits": lambda: fill("1 "),
    "credit_card: dashed digits": lambda: fill("1-"),
    "ipv6: colons": lambda: fill(":"),
    "ipv6: groups": lambda: fill("1:"),
    "ipv6: endless zone": lambda: "1:1:%" + fill("a") + ":",
    "ipv4: dots": lambda: fill("1."),
    "ipv4: endless quad": lambda: fill("1.1.1.1."),
    "ipv4: version contexts": lambda: fill("version 1.1.1.1 "),
    "phone: spaced digits": lambda: fill("1 "),
    "phone: brackets": lambda: fill("(1"),
    "phone: country codes": lambda: fill("+1-"),
    "phone: distinct phone-shaped runs": phone_shaped_runs,
    "phone: lists of trunk-prefixed groups": lambda: fill("0 12 34 56 78 0 12 34 56 78 0 1 x "),
}


def _plain_scan_seconds(text: str) -> float:
    """A linear-time reference: one regex step per character of the same text."""
    started = time.perf_counter()
    re.findall(r"[\s\S]", text)
    return time.perf_counter() - started


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_pii_redaction_is_linear_on_1mb_attacks(attack: str) -> None:
    text = ATTACKS[attack]()
    assert len(text) >= MB
    reference = _plain_scan_seconds(text)
    started = time.perf_counter()
    redact(text)
    elapsed = time.perf_counter() - started
    # A linear scan takes a small multiple of the reference; a quadratic one takes hours.
    assert elapsed < max(2.0, 25 * reference), (attack, elapsed, reference)


def run_piped(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with stdout and stderr piped (not a terminal) and progress enabled."""
    environ = {**cli_env(), **env}
    environ.pop("LMFORGE_NO_PROGRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "lmforge", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
    )


def _latin1_corpus(path: Path) -> Path:
    lines = [f"Le café numéro {i} est très animé, à côté de la rivière." for i in range(300)]
    path.write_bytes(("plain ascii first line here\n" + "\n".join(lines) + "\n").encode("latin-1"))
    return path


def _prepare_args(corpus: Path, out: Path) -> list[str]:
    return [
        "data",
        "prepare",
        str(corpus),
        "--output",
        str(out),
        "--char-level",
        "--dedup",
        "none",
    ]


def test_latin1_corpus_is_reported_on_the_console(tmp_path: Path) -> None:
    corpus = _latin1_corpus(tmp_path / "fr.txt")
    result = run_piped(*_prepare_args(corpus, tmp_path / "ds"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text(encoding="utf-8"))
    replaced = json.dumps(manifest).count('"undecodable_bytes_replaced": ')
    assert replaced, "the manifest counts replaced bytes"
    console = " ".join(result.stderr.split())
    assert "byte sequence(s) are not utf-8" in console, result.stderr
    assert f"{corpus}:2" in console and "--encoding" in console


def test_encoding_flag_decodes_latin1(tmp_path: Path) -> None:
    corpus = _latin1_corpus(tmp_path / "fr.txt")
    args = _prepare_args(corpus, tmp_path / "ds")
    result = run_piped(*args, "--encoding", "latin-1")
    assert result.returncode == 0, result.stderr
    assert "U+FFFD" not in result.stderr
    inspect = run_piped("data", "inspect", str(tmp_path / "ds"), "--samples", "3")
    assert "café" in inspect.stdout


def test_prepare_logs_progress_lines_when_piped(tmp_path: Path) -> None:
    corpus = _latin1_corpus(tmp_path / "fr.txt")
    result = run_piped(*_prepare_args(corpus, tmp_path / "ds"), LMFORGE_PROGRESS_INTERVAL="0")
    assert result.returncode == 0, result.stderr
    console = " ".join(result.stderr.split())  # rich wraps log lines at the console width
    assert len(re.findall(r"read \+ clean: [\d.]+/[\d.]+ MB \(", console)) >= 2, console
    assert re.search(r"encode \+ pack: 301/301 docs \(100\.0%\) .*elapsed [\d:]+, done", console)


def test_training_logs_progress_lines_when_piped(ptb_small: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(ptb_small), "--output", str(tmp_path / "m"), *TINY]
    result = run_piped(
        *args, "--max-steps", "12", "--eval-steps", "6", LMFORGE_PROGRESS_INTERVAL="0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = " ".join(result.stderr.split())  # rich wraps log lines at the console width
    steps = [int(s) for s in re.findall(r"train: (\d+)/12 steps \([\d.]+%\)", console)]
    assert len(steps) >= 10 and steps == sorted(steps), console[-3000:]
    assert re.search(r"steps/s, elapsed [\d:]+, ETA [\d:]+ [\d,]+ tok/s loss [\d.]+", console)
    assert re.search(r"train: 12/12 steps \(100\.0%\) .*done", console)


def test_progress_interval_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge import progress

    now = [0.0]
    lines: list[str] = []
    monkeypatch.setattr(progress.log, "info", lambda fmt, line: lines.append(line))
    line = progress.ProgressLine("encode", 100, "docs", interval=30, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1
        line.advance()
    line.finish()
    assert len(lines) == 4  # at 30, 60 and 90 seconds, and the end
    assert lines[0].startswith("encode: 30/100 docs (30.0%) 1.0 docs/s, elapsed 0:00:30")
    assert "ETA 0:01:10" in lines[0]
    assert lines[-1].endswith("done")
