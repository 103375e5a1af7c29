"""The default thread count fits the box: cgroup v2 and v1 CPU quotas (of the process's cgroup
and its ancestors) and the CPU affinity, read from fabricated cgroup trees."""

from __future__ import annotations

from pathlib import Path

from lmforge.threads import cpu_quota, default_threads, openmp_environment, resolve_threads


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return root


def own_cgroup(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(text, encoding="utf-8")
    return path


def test_cgroup_v2_quota_of_the_process_and_its_parents(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "fs",
        {
            "cgroup.controllers": "cpu memory",
            "cpu.max": "max 100000",
            "kubepods/cpu.max": "300000 100000",  # the pod: 3 CPUs
            "kubepods/app/cpu.max": "max 100000",  # the container itself: no limit
        },
    )
    mine = own_cgroup(tmp_path, "0::/kubepods/app\n")
    assert cpu_quota(root, mine) == 3.0
    assert default_threads(root, mine, cpus=32) == 3
    assert default_threads(root, mine, cpus=2) == 2  # never more than the usable CPUs
    # A container that sees the host's path but mounts its own cgroup at the root.
    tree(root, {"cpu.max": "150000 100000"})
    assert cpu_quota(root, own_cgroup(tmp_path, "0::/elsewhere\n")) == 1.5
    assert default_threads(root, own_cgroup(tmp_path, "0::/elsewhere\n"), cpus=32) == 1


def test_cgroup_v1_cfs_quota_and_no_quota(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "fs",
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        },
    )
    mine = own_cgroup(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpu_quota(root, mine) == 2.0
    assert default_threads(root, mine, cpus=64) == 2
    unlimited = own_cgroup(tmp_path, "3:cpu,cpuacct:/\n")
    assert cpu_quota(root, unlimited) is None
    assert default_threads(root, unlimited, cpus=6) == 6


def test_a_fraction_of_a_cpu_still_gets_one_thread_and_junk_is_no_quota(tmp_path: Path) -> None:
    root = tree(tmp_path / "fs", {"cgroup.controllers": "cpu", "cpu.max": "50000 100000"})
    mine = own_cgroup(tmp_path, "0::/\n")
    assert default_threads(root, mine, cpus=8) == 1
    tree(root, {"cpu.max": "lots 100000"})
    assert cpu_quota(root, mine) is None
    assert cpu_quota(tmp_path / "absent", tmp_path / "absent-file") is None


def test_an_explicit_count_wins_and_the_openmp_defaults_respect_the_user() -> None:
    assert resolve_threads(3, {"OMP_NUM_THREADS": "8"}) == 3
    assert resolve_threads(0, {"OMP_NUM_THREADS": "1"}) == 1  # what torchrun sets
    assert resolve_threads(0, {}) == default_threads() >= 1
    assert resolve_threads(0, {"LOCAL_WORLD_SIZE": "64"}) == 1
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    openmp_environment(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}
    empty: dict[str, str] = {}
    openmp_environment(empty)
    assert empty == {"OMP_WAIT_POLICY": "PASSIVE"}
