"""`data prepare --engine ray` on a local Ray with 2 worker CPUs: the same bytes as the local
engine (the golden digest of the single-process pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.integration.data_scale_corpus import dataset_digest, write_planted_corpus
from tests.integration.test_data_scale import GOLDEN

pytestmark = pytest.mark.integration
pytest.importorskip("ray")


def test_ray_engine_writes_the_local_engines_bytes(tmp_path: Path) -> None:
    planted = write_planted_corpus(tmp_path / "planted.txt")
    env = {k: v for k, v in cli_env().items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    out = tmp_path / "ds"
    args = [str(planted), "--output", str(out), "--vocab-size", "1000", "--block-docs", "300"]
    result = run_cli(
        "data", "prepare", *args, "--engine", "ray", "--workers", "2", env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "near_duplicate" in result.stdout
    assert dataset_digest(out, planted) == GOLDEN
