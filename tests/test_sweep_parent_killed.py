"""A sweep killed with SIGKILL on its own process (as a scheduler or the OOM killer does) takes its
workers with it, and its rerun runs each combination exactly once."""
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from lamaml.experiments.processes import alive as _alive
from lamaml.experiments.store import Store

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")

SWEEP = ["sweep", "--benchmarks", "mnist-rotations", "--methods", "online", "--seeds", "0-1", "--tasks", "2",
         "--set", "samples_per_task=20", "--jobs", "2"]


def _default_signals():
    """An earlier test may leave SIGINT ignored, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_sweep_killed_on_its_own_process_leaves_no_worker_and_its_rerun_runs_each_combination_once(
        data_dir, tmp_path):
    store, env = tmp_path / "runs.sqlite", dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    command = [sys.executable, "-m", "lamaml", *SWEEP, "--store", str(store)]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=REPO, preexec_fn=_default_signals,
                                 start_new_session=True)
    try:
        claimed = lambda: {r["pid"] for r in Store(store).query()} if store.exists() else set()   # noqa: E731
        assert _wait_until(lambda: len(claimed()) >= 1, 120), (tmp_path / "first.log").read_text()
        workers = claimed() | _children(first.pid)  # both workers (started at submit), the resource tracker
        assert len(workers) >= 3, workers
        first.send_signal(signal.SIGKILL)           # the parent only, not its process group
        first.wait()
        assert len(Store(store).query(["status=done"])) < 2, "the sweep finished before it could be killed"
        rerun = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
                               preexec_fn=_default_signals)
        assert rerun.returncode == 0, rerun.stderr
        done = collections.Counter(r["config_hash"] for r in Store(store).query(["status=done"]))
        assert len(done) == 2 and set(done.values()) == {1}, done
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)    # whatever of the first sweep is left, fix or no fix
        except ProcessLookupError:
            pass


WORKER = """
import os, sys, time
from lamaml.experiments import lifeline
if sys.argv[1] == "watch":
    lifeline._parent_death_signal = lambda: False      # the fallback used where prctl is not available
lifeline.POLL_S = 0.1
lifeline.die_with_parent(int(sys.argv[2]))
print(os.getpid(), flush=True)
time.sleep(60)
"""
PARENT = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())])
time.sleep(60)
"""


@pytest.mark.parametrize("mechanism", ["prctl", "watch"])
def test_a_worker_exits_when_its_parent_is_killed(mechanism, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WORKER, mechanism], stdout=subprocess.PIPE, text=True,
                              env=env, start_new_session=True)
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.kill()
        parent.wait()
        assert _wait_until(lambda: not _alive(worker), 3)
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_worker_whose_parent_died_before_it_was_armed_exits_at_once():
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    alone = subprocess.run([sys.executable, "-c", WORKER, "prctl", "1"], env=env, timeout=60,
                           capture_output=True, text=True)
    assert alone.returncode == 1 and alone.stdout == ""
