"""Whether the process that claimed a run is still alive (this host only): its number, and on Linux its
start time, since after a restart another process may hold the number."""
from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int, pid_start: float | None = None) -> bool:
    """Whether process ``pid`` still runs, and is the one that started at ``pid_start`` (Linux; where it is
    recorded): after a restart of the machine or container another process may hold the number."""
    if pid_start is not None:
        now = process_start(pid)
        if now is not None and abs(now - pid_start) > 1.0:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _zombie(pid)


def process_start(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux: /proc), or None where that cannot
    be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _zombie(pid: int) -> bool:
    """Killed but not yet reaped (Linux): kill(pid, 0) still finds it, yet it will never finish a run.
    An orphan stays so for good where the container's init does not reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])
