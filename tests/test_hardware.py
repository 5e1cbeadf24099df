"""The CPU's vendor and model name, read from /proc/cpuinfo (MER's native_convs=auto asks the vendor), and
the allocator's settings."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import lamaml.hardware as hardware

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model name\t: AMD EPYC 9B45

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: not the first CPU
"""
INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8581C CPU @ 2.10GHz\n"


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def write(text: str | None, processor: str = ""):
        path = tmp_path / "cpuinfo"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(hardware, "CPUINFO", path)
        monkeypatch.setattr(hardware.platform, "processor", lambda: processor)
        hardware.cpu_info.cache_clear()
        return hardware.cpu_info()
    yield write
    hardware.cpu_info.cache_clear()


def test_the_first_cpus_vendor_and_model_are_read(cpuinfo):
    assert cpuinfo(AMD) == {"vendor": "AuthenticAMD", "model": "AMD EPYC 9B45"}
    assert not hardware.intel_cpu()
    assert cpuinfo(INTEL) == {"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) Platinum 8581C CPU @ 2.10GHz"}
    assert hardware.intel_cpu()


def test_without_proc_cpuinfo_the_platforms_words_decide(cpuinfo):
    windows = "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel"
    assert cpuinfo(None, windows) == {"vendor": "GenuineIntel", "model": windows}
    assert cpuinfo(None, "arm") == {"vendor": "", "model": "arm"}
    assert not hardware.intel_cpu()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_allocator_settings_go_to_glibc_and_to_spawned_workers_and_the_users_own_win(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "")      # so that monkeypatch restores it after the test
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "268435456")            # the user's own
    assert hardware.tune_allocator()                                     # mallopt took both
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)         # what workers start with
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "268435456"
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(32 << 20)
