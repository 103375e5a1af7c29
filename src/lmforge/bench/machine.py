"""What every benchmark prints about the machine it ran on: figures compare only within one
machine, and the CPU's flags say which kernels (AVX2, AVX-512, AMX, bf16) it had."""

from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The `flags` line of the first CPU, or `flags: ?` where the file has none."""
    with cpuinfo.open(encoding="utf-8") as info:
        return next((line.strip() for line in info if line.startswith("flags")), "flags: ?")
