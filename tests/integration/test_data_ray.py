"""`data prepare --engine ray` on a local Ray with 2 worker CPUs: the same bytes as the local
engine (the golden digest of the single-process pipeline), with near-duplicate detection
(the key shuffles) and without it (blocks streamed straight through). One Ray for the
module: its start is most of the time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lmforge.config import build_config
from lmforge.config.data import PrepareConfig
from lmforge.data.prepare import prepare
from tests.integration.data_scale_corpus import dataset_digest, write_planted_corpus
from tests.integration.test_data_scale import GOLDEN

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("LMFORGE_NO_PROGRESS", "1")
        patch.delenv("RAY_ADDRESS", raising=False)  # a local Ray, whatever the shell has
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_planted_corpus(tmp_path_factory.mktemp("planted") / "planted.txt")


def run(planted: Path, out: Path, **options: Any) -> dict[str, Any]:
    config = {"inputs": [str(planted)], "output": str(out), "vocab_size": 1000, **options}
    return prepare(build_config(PrepareConfig, {"block_docs": 300, **config})).manifest


def test_ray_engine_writes_the_local_engines_bytes(
    local_ray: None, planted: Path, tmp_path: Path
) -> None:
    manifest = run(planted, tmp_path / "ds", engine="ray", workers=2)
    dedup = next(s for s in manifest["stages"] if s["name"] == "dedup")
    assert dedup["removed"]["near_duplicate"] > 0
    assert dataset_digest(tmp_path / "ds", planted) == GOLDEN


def test_ray_engine_without_dedup_streams_the_same_bytes(
    local_ray: None, planted: Path, tmp_path: Path
) -> None:
    options = {"dedup": "none", "sample_fraction": 0.5, "seed": 3}
    run(planted, tmp_path / "ray", engine="ray", workers=2, **options)
    # One local worker: no process pool forked from a process that runs Ray.
    run(planted, tmp_path / "local", workers=1, **options)
    assert dataset_digest(tmp_path / "ray", planted) == dataset_digest(tmp_path / "local", planted)
