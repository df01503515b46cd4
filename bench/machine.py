"""What a figure was measured on and at: the machine, its load, the git commit; process memory from /proc."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from scripts.local_stack import ROOT


def cpu_model() -> str:
    """The CPU's name with its family and model: cloud CPUs are often named only "AMD EPYC", and one generation
    can be several times faster than another on this work (AVX-512 in the networks' kernels)."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def simd_extensions() -> list[str]:
    """The vector instruction sets the CPU offers that the numerical libraries use."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [name for name in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16") if name in flags]


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: other work on the machine skews every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "simd": simd_extensions(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_commit() -> dict:
    """HEAD and whether the working tree differs from it (a figure from uncommitted code says so)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MiB (VmRSS), None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far, None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
