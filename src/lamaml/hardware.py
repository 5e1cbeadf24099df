"""The CPU this process runs on, where a choice of kernels depends on it, and for the run's record;
and the C allocator's settings for the vision nets' large temporaries (``tune_allocator``).

MKL, which PyTorch's own CPU kernels multiply with, takes its AVX-512 code only on Intel CPUs; on
an AMD CPU with AVX-512 it runs its AVX2 code (107 GFLOP/s on one thread of the 2026-12-04 AMD EPYC
VM, where oneDNN's own kernels run the pc-cnn's largest conv at about 170; ``bench/conv_batch1.py``,
BENCHMARKS.md "MER's convolutions by CPU vendor"). So which convolution kernels are faster at one image depends
on the vendor, and MER's ``native_convs: auto`` asks ``intel_cpu``.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
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


# glibc's mallopt parameters, and the values the CLI holds the allocator to
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": 32 << 20, "MALLOC_TRIM_THRESHOLD_": 1 << 30}


def tune_allocator() -> bool:
    """Hold glibc's allocator to fixed large-block settings, in this process and (through the
    environment) in the workers it spawns: blocks up to 32 MiB come from the heap, not a fresh
    mmap, and up to 1 GiB of freed heap stays mapped. A Tiny ImageNet update makes and drops many
    11 MB tensors (2.87 M numbers); with glibc's defaults each can cost its page faults again
    (La-MAML and Meta-BGD 3-20 % per update, BENCHMARKS.md). Settings already in the environment
    win. Returns whether the allocator took them (False off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    for name, value in ALLOCATOR.items():
        os.environ.setdefault(name, str(value))
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    took = [mallopt(option, int(os.environ[name])) for option, name in
            ((M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"), (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"))
            if os.environ[name].isdigit() and int(os.environ[name]) < 2 ** 31]
    return bool(took) and all(took)
