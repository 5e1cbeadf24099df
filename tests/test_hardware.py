"""The CPU's vendor and model name, read from /proc/cpuinfo (MER's native_convs=auto asks the vendor)."""
from __future__ import annotations

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
