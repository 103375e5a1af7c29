"""`registry pull` and resolving `models:/...` for serving: download a version's files into
`$LMFORGE_HOME/cache/NAME/VERSION` and verify every file against the sha256s recorded in the
registry when the version was created (not against the downloaded lmforge.json, which could be
tampered with too)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from lmforge.errors import RegistryError
from lmforge.modelio import file_problems, refuse_pickle
from lmforge.registry.refs import parse_ref
from lmforge.registry.store import client as store_client
from lmforge.registry.store import lmforge_home
from lmforge.registry.versions import get_version, version_files

MLFLOW_DOWNLOAD_NOTE = "registered_model_meta"


def check_files(
    directory: Path, expected: dict[str, str], what: str, hint: str | None = None
) -> None:
    """Every expected file present with its registered sha256, and no pickle weights."""
    if problems := file_problems(directory, expected, "its registered sha256"):
        raise RegistryError(f"{what} failed verification: " + "; ".join(problems), hint=hint)
    refuse_pickle(directory)


def pull(ref_text: str) -> tuple[Path, Any]:
    """(verified local model dir, ModelVersion) for NAME@ALIAS, NAME/VERSION or NAME."""
    import mlflow

    client = store_client()
    version = get_version(client, parse_ref(ref_text))
    expected = version_files(version)
    what = f"{version.name}/{version.version}"
    cached = lmforge_home() / "cache" / version.name / str(version.version)
    if cached.is_dir():
        check_files(
            cached,
            expected,
            f"cached {what} ({cached})",
            hint=f"remove {cached} to download it again, and find out who changed it",
        )
        return cached, version
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        dir=cached.parent, prefix=f".{version.version}.partial-"
    ) as tmp:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=tmp)
            )
        except Exception as exc:  # the artifact store's own error types vary by backend
            raise RegistryError(f"cannot download {what} from {version.source}: {exc}") from exc
        # MLflow's note of which version a `models:/` load came from: in a local store that
        # load writes it into the version's artifacts. Bookkeeping, not part of the model.
        (local / MLFLOW_DOWNLOAD_NOTE).unlink(missing_ok=True)
        check_files(local, expected, f"download of {what}")
        if cached.exists():  # another process finished first; its copy is verified above too
            return cached, version
        shutil.move(str(local), cached)
    return cached, version
