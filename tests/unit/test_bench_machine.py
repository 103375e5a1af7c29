from pathlib import Path

from lmforge.bench.machine import cpu_flags


def test_cpu_flags_is_the_first_cpus_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == "flags\t\t: fpu avx2 avx512f"


def test_cpu_flags_says_unknown_without_a_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: some arm core\n")
    assert cpu_flags(info) == "flags: ?"
