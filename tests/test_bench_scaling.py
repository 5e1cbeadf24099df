"""bench/cpu_scaling.py: each mode runs its jobs as it says (threads, and intra-op threads per job)."""
import importlib.util
import threading
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("cpu_scaling", Path(__file__).parents[1] / "bench" / "cpu_scaling.py")
cpu_scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_scaling)


@pytest.mark.parametrize("mode, on_callers_thread, intra_op", [("one", True, 1), ("intra", True, 2), ("side", False, 1)])
def test_each_mode_runs_every_job_on_the_threads_it_names(threads, mode, on_callers_thread, intra_op):
    threads(2)
    jobs = [cpu_scaling.matmul(8)() for _ in range(2)]
    if mode == "side":     # each job waits for the other: they must run at once, on two threads
        barrier = threading.Barrier(2, timeout=10)
        jobs = [lambda job=job: (barrier.wait(), job()) for job in jobs]
    seen = []
    cpu_scaling.timed(mode, jobs, threads=2, passes=1, seen=seen)
    assert len(seen) == 2 and all(n == intra_op for _, n in seen)
    idents = {ident for ident, _ in seen}
    if on_callers_thread:
        assert idents == {threading.get_ident()}
    else:
        assert len(idents) == 2 and threading.get_ident() not in idents      # one worker thread per job
    assert torch.get_num_threads() == 2                                       # the caller's count is back


def test_measure_gives_ms_per_call_for_each_mode():
    made = []

    def make():
        calls = []
        made.append(calls)
        return lambda: calls.append(1)
    ms = cpu_scaling.measure(make, threads=2, passes=3, rounds=2)
    assert set(ms) == set(cpu_scaling.MODES) and all(v > 0 for v in ms.values())
    # two jobs, each called passes x modes x (rounds + the warm-up round) times
    assert [len(calls) for calls in made] == [3 * 3 * 3] * 2

