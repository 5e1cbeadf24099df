"""Facts about the running process that go into a run's metrics: peak memory, the code's commit.

``write_json_atomic`` (from ``lamaml.atomic``) is re-exported here for ``lamaml.engine``.
"""
from __future__ import annotations

import functools
import resource
import subprocess
import sys
from pathlib import Path

from ..atomic import write_json_atomic

__all__ = ["code_commit", "peak_rss_mb", "write_json_atomic"]   # write_json_atomic: for lamaml.engine


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@functools.lru_cache(maxsize=None)
def code_commit() -> str | None:
    """The git commit of the running code (with ``+dirty`` for local changes); None outside a checkout."""
    package = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=package, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
