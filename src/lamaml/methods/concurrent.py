"""Independent pieces of one update run side by side, each on its share of the training threads.

A method whose update holds independent computations (Meta-BGD's Monte-Carlo draws: one look-ahead
meta-gradient each, at its own sampled weights) can run them on worker threads at once, each on
``threads // workers`` intra-op threads, instead of one after another on all of them. A second
thread does not double the speed of the pc-cnn's small convolutions, so on the 2-core reference
machine two draws on one thread each can finish sooner than two draws on two: CIFAR-100's Meta-BGD
update, 1.16-1.24x multi-pass, though Tiny ImageNet's gained nothing (BENCHMARKS.md, "Meta-BGD's draws
side by side"). PyTorch releases the GIL inside its operations and runs a CPU backward on the thread
that calls it, so the workers compute in parallel.

The caller keeps every choice that consumes a random generator, in order, on its own thread; a job
must not consume one, nor share a module with another job (``torch.func.functional_call`` swaps a
module's parameters while it runs).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

import torch

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _workers(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``n`` threads, kept (each thread's OpenMP team is kept with it)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < n:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="lamaml-split"), n
    return _pool


class ThreadSplit:
    """``with ThreadSplit(workers, threads) as split: future = split.submit(job)``: each job runs on a
    worker thread with ``max(1, threads // workers)`` intra-op threads, at most ``workers`` at once.
    With one worker each job runs at once on the caller's thread, as plain code would. On leaving,
    every job has finished (the first failure is raised) and the caller's thread count is set again:
    PyTorch's process-wide default, which a new thread starts from, follows the last thread that set one."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = max(1, workers), max(1, threads)
        self.futures: list[Future] = []

    def submit(self, job: Callable[[], T]) -> Future:
        if self.workers == 1:
            done: Future = Future()
            done.set_result(job())
            return done
        share = max(1, self.threads // self.workers)

        def on_its_share() -> T:
            torch.set_num_threads(share)
            return job()
        future = _workers(self.workers).submit(on_its_share)
        self.futures.append(future)
        return future

    def __enter__(self) -> "ThreadSplit":
        return self

    def __exit__(self, *exc) -> None:
        try:
            for future in self.futures:
                future.exception()          # wait for all before raising any
            for future in self.futures:
                future.result()
        finally:
            if self.workers > 1:
                torch.set_num_threads(self.threads)
