"""What the CPU offers, from /proc/cpuinfo: the flags line every benchmark prints (figures
compare only within one machine, and the flags say which kernels it had: AVX2, AVX-512, AMX,
bf16), and whether it multiplies bfloat16 natively (the serve engine's opt-in bf16 LM head)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> str:
    """The `flags` line of the first CPU, or `flags: ?` where the file has none (or none is
    readable)."""
    try:
        with cpuinfo.open(encoding="utf-8") as info:
            return next((line.strip() for line in info if line.startswith("flags")), "flags: ?")
    except OSError:
        return "flags: ?"


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX): elsewhere oneDNN
    emulates it, slower than float32."""
    flags = cpu_flags(cpuinfo).split()
    return "avx512_bf16" in flags or "amx_bf16" in flags
