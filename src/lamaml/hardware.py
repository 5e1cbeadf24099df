"""The CPU this process runs on, where a choice of kernels depends on it, and for the run's record.

MKL, which PyTorch's own CPU kernels multiply with, takes its AVX-512 code only on Intel CPUs; on
an AMD CPU with AVX-512 it runs its AVX2 code (about 104 GFLOP/s on one thread of the 2026-12-04
AMD EPYC VM against about 170 for oneDNN's own convolution kernels on the same CPU; BENCHMARKS.md,
"MER's convolutions by CPU vendor"). So which convolution kernels are faster at one image depends
on the vendor, and MER's ``native_convs: auto`` asks ``intel_cpu``.
"""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, str]:
    """The first CPU's vendor (``GenuineIntel``, ``AuthenticAMD``, ...) and model name: from
    /proc/cpuinfo on Linux, else ``platform.processor()``'s words (empty where it knows none)."""
    fields: dict[str, str] = {}
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "model name"):
                fields.setdefault(key, value.strip())
            if len(fields) == 2 or (not key and fields):     # the first CPU's block ends at a blank line
                break
    except OSError:
        pass
    guess = platform.processor()
    vendor = fields.get("vendor_id") or next((v for v in ("GenuineIntel", "AuthenticAMD") if v in guess), "")
    return {"vendor": vendor, "model": fields.get("model name") or guess}


def intel_cpu() -> bool:
    """Whether this is an Intel CPU (where MKL takes its fastest code)."""
    return cpu_info()["vendor"] == "GenuineIntel"
