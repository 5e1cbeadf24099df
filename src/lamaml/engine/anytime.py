"""Anytime evaluation: accuracy on the tasks seen so far every few incoming batches, not only after tasks.

Every ``every`` incoming batches, and at the end of each task (after ``end_task``), the method is
evaluated on every task seen so far, the current one included, on the split the accuracy matrix
uses (validation where the benchmark has one, else test). Each point is kept in the run's progress
(so checkpoints keep the curve) as ``{"updates", "batches", "task", "task_end", "accuracy",
"accuracies"}``: ``accuracy`` is the mean of ``accuracies`` (percent, one per seen task). At a
task's end the accuracy-matrix row's entries are reused where the loop measured them; a batch point
that falls on a task's last batch gives way to the task-end point of the same update (the one after
``end_task``). With ``anytime_samples`` N, every point reads only the first N samples of each task's
split (task ends included, so the curve is one measure throughout), which makes the T^2/2 evaluations of
a 100-task stream affordable. Evaluation runs in eval mode, draws no random numbers and changes no weight, so a run
with anytime evaluation trains exactly as one without; its time counts as evaluation time, never as
training time. ``metrics.anytime_metrics`` turns the points into AAA, min-ACC and WC-ACC.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..data import TaskStream
from .evaluate import evaluate_all
from .plugins import Plugin


class AnytimeEvaluation(Plugin):
    needs_task_stream = True    # min-ACC, WC-ACC read accuracies after each task was learned: a joint run has none
    def __init__(self, stream: TaskStream, device: torch.device, every: int, batch_size: int, glances: int,
                 samples: int | None = None):
        self.stream, self.device, self.every, self.samples = stream, device, every, samples
        self.batch_size, self.glances = batch_size, glances
        self.split = "val" if stream.has_validation else "test"
        self.threads = torch.get_num_threads()

    def run_starts(self, run) -> None:
        self.threads = torch.get_num_threads()     # the loop's evaluation threads (it trains on fewer)

    def batch_done(self, run, task, loss) -> None:
        batches = run.progress.updates // self.glances
        if batches % self.every == 0:
            self._record(run, task, self._evaluate(run, list(range(task + 1))), task_end=False)

    def task_done(self, run, task, row) -> None:
        accuracies = np.array(row[:task + 1], dtype=np.float64)
        if self.samples:        # the row read whole splits: every point of the curve reads the same samples
            accuracies[:] = np.nan
        missing = [i for i in range(task + 1) if math.isnan(accuracies[i])]
        if missing:
            accuracies[missing] = self._evaluate(run, missing)[missing]
        points = run.progress.anytime
        if points and points[-1]["updates"] == run.progress.updates and points[-1]["task"] == task:
            points.pop()
        self._record(run, task, accuracies, task_end=True)

    def _evaluate(self, run, tasks: list[int]) -> np.ndarray:
        start, threads = time.perf_counter(), torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            accuracies = evaluate_all(run.method, self.stream, self.device, self.batch_size, split=self.split,
                                      only=tasks, limit=self.samples)
        finally:
            torch.set_num_threads(threads)
        run.progress.eval_time += time.perf_counter() - start
        return accuracies

    def _record(self, run, task: int, accuracies: np.ndarray, task_end: bool) -> None:
        seen = [float(a) for a in accuracies[:task + 1]]
        run.progress.anytime.append({"updates": run.progress.updates, "batches": run.progress.updates // self.glances,
                                     "task": task, "task_end": task_end, "accuracy": float(np.mean(seen)),
                                     "accuracies": seen})


def anytime_evaluations(batches: list[int], rows: list[int], every: int, evaluate: str,
                        share: float = 1.0) -> float:
    """Single-task evaluations anytime evaluation adds to a run whose phases have ``batches`` incoming
    batches each (epochs included) and fill matrix ``rows``: t + 1 per point during task t, and at a
    task's end the seen tasks the loop's row skipped (``evaluate="metrics"``: all but the last two). With
    ``share`` < 1 (``anytime_samples`` of a split), each costs that part of one and a task's end
    evaluates all t + 1 seen tasks on the samples."""
    count, done = 0.0, 0
    for n, t in zip(batches, rows):
        points = (done + n) // every - done // every - ((done + n) % every == 0)
        if share < 1:
            count += (points + 1) * (t + 1) * share
        else:
            count += points * (t + 1) + (t if evaluate == "metrics" and t < rows[-1] else 0)
        done += n
    return count
