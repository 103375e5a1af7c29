"""How many threads this process should run torch with: no more than the CPUs it may use.

A container limited to 2 CPUs on a 32-core node sees 32 cores (`os.cpu_count()`), and a torch
that starts 32 threads there is throttled by its CPU quota and spins. The default is the
smallest of:

- the CPUs the scheduler lets this process run on (`os.sched_getaffinity`, i.e. a cpuset);
- the cgroup CPU quota, in whole CPUs (rounded down, at least 1): cgroup v2 `cpu.max`
  ("QUOTA PERIOD", or "max"), cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none),
  for the process's own cgroup and every cgroup above it (a parent's limit binds too);

shared among the processes `torchrun` started on this node (`LOCAL_WORLD_SIZE`). An
`OMP_NUM_THREADS` in the environment is a choice someone made (torchrun sets 1) and is kept.

The cgroup files are read under a root that tests replace with a fabricated tree.

OpenMP's wait policy is an environment variable that libgomp reads once, when torch loads it,
so `openmp_environment` must run before the first `import torch` (the CLI calls it before any
verb imports torch). See `DEFAULT_OPENMP` for what it sets and the measurement behind it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 mounts the cpu controller under one of these names.
V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")
# Set (unless the user's environment already has them) before torch loads: measured by
# bench/threads.py on a loaded 2-core machine (README, "Threads").
DEFAULT_OPENMP: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _own_paths(cgroup_file: Path) -> tuple[str | None, str | None]:
    """(cgroup v2 path, cgroup v1 cpu-controller path) of this process, from /proc/self/cgroup
    lines "ID:CONTROLLERS:PATH" (v2: "0::PATH")."""
    v2 = v1 = None
    for line in (_read(cgroup_file) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _up_to(base: Path, relative: str | None) -> list[Path]:
    """`base/relative` and each dir above it up to `base`; just `base` when the path is not
    there (a container shows the host's path of its cgroup but mounts its own at the root)."""
    here = base / (relative or "/").lstrip("/")
    if not here.is_dir():
        return [base]
    dirs = [here]
    while here != base and base in here.parents:
        here = here.parent
        dirs.append(here)
    return dirs


def _v2_quota(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        return int(quota) / int(period or "100000")
    except (ValueError, ZeroDivisionError):
        log.warning("unreadable %s: %r", directory / "cpu.max", text)
        return None


def _v1_quota(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    try:
        value, length = int(quota), int(period)
    except ValueError:
        log.warning("unreadable cfs quota in %s: %r / %r", directory, quota, period)
        return None
    return value / length if value > 0 and length > 0 else None


def cpu_quota(root: Path = CGROUP_ROOT, cgroup_file: Path = SELF_CGROUP) -> float | None:
    """The tightest CPU quota over this process's cgroup and its ancestors, in CPUs
    (e.g. 1.5); None when there is none."""
    v2_path, v1_path = _own_paths(cgroup_file)
    quotas = []
    if (root / "cgroup.controllers").is_file():  # the unified (v2) hierarchy is mounted here
        quotas += [_v2_quota(d) for d in _up_to(root, v2_path)]
    for name in V1_CPU_DIRS:
        if (root / name).is_dir():
            quotas += [_v1_quota(d) for d in _up_to(root / name, v1_path)]
            break
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def usable_cpus() -> int:
    """The CPUs the scheduler lets this process run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(
    root: Path = CGROUP_ROOT, cgroup_file: Path = SELF_CGROUP, cpus: int | None = None
) -> int:
    """Threads for torch: the usable CPUs, capped by the cgroup quota (rounded down, >= 1)."""
    count = usable_cpus() if cpus is None else cpus
    quota = cpu_quota(root, cgroup_file)
    if quota is not None:
        count = min(count, max(1, int(quota)))
    return max(1, count)


def resolve_threads(requested: int, environ: Mapping[str, str] | None = None) -> int:
    """`--threads N` as given; for 0, `OMP_NUM_THREADS` when set, else the default shared
    among this node's torchrun processes."""
    if requested > 0:
        return requested
    environ = os.environ if environ is None else environ
    chosen = environ.get("OMP_NUM_THREADS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    local = environ.get("LOCAL_WORLD_SIZE", "1")
    processes = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, default_threads() // processes)


def apply_threads(requested: int) -> int:
    """Set torch's intra-op threads to `requested` (0: the default); returns the count."""
    import torch

    threads = resolve_threads(requested)
    torch.set_num_threads(threads)
    log.debug("torch threads: %d", threads)
    return threads


def openmp_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Put DEFAULT_OPENMP into the environment where the user has not set those variables.
    Call it before torch is imported: libgomp reads them once, when it loads."""
    environ = os.environ if environ is None else environ
    for name, value in DEFAULT_OPENMP.items():
        environ.setdefault(name, value)
