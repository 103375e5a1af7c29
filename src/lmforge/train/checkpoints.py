"""The Trainer's checkpoint dir beside the model dir: find the newest complete checkpoint and
sweep away one that a kill interrupted while it was being written."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
# The Trainer writes trainer_state.json last: a checkpoint without it is incomplete.
COMPLETE_MARKER = "trainer_state.json"


def checkpoint_dir_for(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoints")


def newest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The highest-step complete checkpoint; incomplete ones (a kill mid-save) are removed."""
    if not run_dir.is_dir():
        return None
    found = []
    for path in run_dir.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        if (path / COMPLETE_MARKER).is_file():
            return path
        log.warning("removing incomplete checkpoint %s (interrupted while saving)", path)
        shutil.rmtree(path, ignore_errors=True)
    return None
