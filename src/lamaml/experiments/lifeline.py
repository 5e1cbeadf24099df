"""Sweep workers die with the sweep that started them.

A scheduler or the OOM killer ends a sweep with SIGKILL on its own process, which gets no chance
to stop its pool. Left alone, the workers would go on through the combinations already queued to
them, while the rerun runs the same ones, then wait for work forever, holding the sweep's output
pipe open. ``die_with_parent`` runs in each worker before its first task (the pool's initializer).

On Linux the kernel kills the worker when its parent goes (``PR_SET_PDEATHSIG``). The kernel's
"parent" is the *thread* that started the worker: the pool must be fed from a thread that outlives
its workers. Python 3.11's ProcessPoolExecutor with the spawn context starts workers in the thread
calling ``submit`` (its manager thread starts one only to replace a worker that exited under
``max_tasks_per_child``, which the sweep does not set), and ``run_local`` submits every run and
then waits for the pool in that same thread. Elsewhere a daemon thread in the worker watches for
the parent's death instead (within ``POLL_S``).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1        # from <linux/prctl.h>
POLL_S = 1.0


def die_with_parent(parent: int) -> None:
    """Make this process exit once process ``parent`` (the sweep) is gone, whatever ends it."""
    if not (sys.platform.startswith("linux") and _parent_death_signal()):
        threading.Thread(target=_watch, args=(parent,), name="lamaml-lifeline", daemon=True).start()
    # The parent may have died before the signal was armed; then we were reparented already and the
    # signal will never come.
    if os.getppid() != parent:
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when our parent thread exits; False where prctl is refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(1)
