from pathlib import Path

from lmforge.cpuinfo import cpu_flags, cpu_has_bf16


def test_cpu_flags_is_the_first_cpus_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == "flags\t\t: fpu avx2 avx512f"


def test_cpu_flags_says_unknown_without_a_flags_line_or_a_file(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: some arm core\n")
    assert cpu_flags(info) == "flags: ?"
    assert cpu_flags(tmp_path / "absent") == "flags: ?"


def test_bf16_is_native_with_avx512_bf16_or_amx_only(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert cpu_has_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert not cpu_has_bf16(info)
    assert not cpu_has_bf16(tmp_path / "absent")
