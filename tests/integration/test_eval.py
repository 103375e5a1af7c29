"""`lmforge eval` (perplexity shorthand) on the tiny trained teacher, as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import corpus, run_cli

pytestmark = pytest.mark.integration


def test_perplexity_report_and_baseline(teacher: Path, tmp_path: Path) -> None:
    lines = corpus("ptb/ptb.test.txt").read_text(encoding="utf-8").splitlines()[:300]
    text = tmp_path / "ptb_test_300.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(
        "eval",
        str(teacher),
        "--perplexity",
        str(text),
        "--stride",
        "32",
        "--report",
        str(tmp_path / "report"),
        "--baseline",
        str(teacher),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    metrics = report["tasks"]["perplexity/ptb_test_300"]
    assert metrics["words"] == sum(len(line.split()) + 1 for line in lines)
    assert 1 < metrics["token_perplexity"] < metrics["word_perplexity"] < 512**2
    assert report["settings"] == {"context_length": 64, "stride": 32, "batch_size": 8}
    assert report["data"][str(text)]
    assert report["comparison"]["passed"] and report["comparison"]["tasks"]
    assert "| perplexity/ptb_test_300 |" in (tmp_path / "report" / "report.md").read_text()

    bad = run_cli(
        "eval",
        str(teacher),
        "--perplexity",
        str(text),
        "--stride",
        "100",
        "--report",
        str(tmp_path / "r2"),
    )
    assert bad.returncode == 2 and "stride: 100 is longer than the window of 64" in bad.stderr
    assert not (tmp_path / "r2").exists()
