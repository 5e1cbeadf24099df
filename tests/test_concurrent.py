import threading

import pytest
import torch

from lamaml.methods.concurrent import ThreadSplit


def test_each_job_runs_on_a_worker_with_its_share_of_the_threads_and_the_callers_count_is_restored(threads):
    threads(4)
    seen = []
    with ThreadSplit(2, 4) as split:
        futures = [split.submit(lambda: seen.append((threading.get_ident(), torch.get_num_threads())) or len(seen))
                   for _ in range(3)]
    assert all(f.done() for f in futures) and sorted(f.result() for f in futures) == [1, 2, 3]
    assert all(ident != threading.get_ident() and count == 2 for ident, count in seen)
    assert torch.get_num_threads() == 4


def test_one_worker_runs_each_job_at_once_on_the_callers_thread(threads):
    threads(3)
    with ThreadSplit(1, 3) as split:
        future = split.submit(lambda: (threading.get_ident(), torch.get_num_threads()))
        assert future.done()
    assert future.result() == (threading.get_ident(), 3)


def test_a_failing_job_is_raised_after_every_job_has_finished(threads):
    threads(2)
    finished = threading.Event()

    def fails():
        raise ValueError("draw 0 failed")

    def slow():
        threading.Event().wait(0.2)
        finished.set()
    with pytest.raises(ValueError, match="draw 0 failed"):
        with ThreadSplit(2, 2) as split:
            split.submit(fails)
            split.submit(slow)
    assert finished.is_set() and torch.get_num_threads() == 2


def test_the_pool_grows_when_more_workers_are_asked_for(threads):
    threads(3)
    with ThreadSplit(2, 2) as split:
        split.submit(lambda: None)
    meet = threading.Barrier(3, timeout=10)      # three jobs at once, or the barrier breaks
    with ThreadSplit(3, 3) as split:
        futures = [split.submit(lambda: meet.wait() is not None and torch.get_num_threads()) for _ in range(3)]
    assert [f.result() for f in futures] == [1, 1, 1]
