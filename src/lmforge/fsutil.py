"""Atomic file and directory writes: write under a temporary name, then rename."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from lmforge.errors import ConfigError, Interrupted

log = logging.getLogger(__name__)

_PARTIAL = ".partial-"
_OLD = ".old-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; finished outputs get normal modes.
_UMASK = _current_umask()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) so readers, and a kill at any moment, never leave it half-written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON (sorted keys, trailing newline) so readers never see a half-written file."""
    write_text_atomic(
        path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_leftovers(target: Path, marker: str) -> list[Path]:
    """Entries `.NAME<marker>PID...` beside `target` whose process `PID` is gone."""
    prefix = f".{target.name}{marker}"
    if not target.parent.is_dir():
        return []
    found = []
    for entry in target.parent.iterdir():
        if entry.name.startswith(prefix):
            pid = entry.name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                found.append(entry)
    return found


def _recover_leftovers(target: Path) -> None:
    """Undo what killed runs left beside `target`: their partial dirs are removed, and an old
    output moved aside by a replacement killed between its two renames is put back when
    nothing took its place (else it is removed): the replacement then never happened."""
    for partial in _dead_leftovers(target, _PARTIAL):
        shutil.rmtree(partial, ignore_errors=True)
    for old in sorted(_dead_leftovers(target, _OLD)):
        if not target.exists():
            os.replace(old, target)
            log.warning("restored %s, left aside by a replacement that was killed", target)
        else:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into an exception so cleanup code runs (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("stopped by SIGTERM; partial output removed")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_dir(target: Path, *, force: bool) -> Iterator[Path]:
    """Yield a fresh temporary dir beside `target`; on success it replaces `target`.

    On any failure or interruption the temporary dir is removed, so nothing half-written is
    ever visible at `target`. An existing `target` is replaced only with `force`, by two
    renames (aside, then in); a kill between them is undone by the next call for `target`.
    """
    _recover_leftovers(target)
    if target.exists() and not force:
        raise ConfigError(
            f"output {target} already exists", hint="pass --force to replace it, or pick another"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL}{os.getpid()}-", dir=target.parent)
    )
    try:
        with _sigterm_as_interrupt():
            yield tmp
            # Some writers (mkstemp, safetensors) leave files private; outputs are shared.
            os.chmod(tmp, 0o777 & ~_UMASK)
            for path in tmp.rglob("*"):
                os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)
            if target.exists():
                old = target.parent / f".{target.name}{_OLD}{os.getpid()}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; partial output removed") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
