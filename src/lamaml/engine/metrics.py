"""Continual-learning metrics from the task accuracy matrix.

``R[i, j]`` = accuracy (percent) on task j after training on tasks 0..i; ``baseline[j]`` = accuracy
on task j before any training. Definitions follow the GEM/La-MAML code (the authors' metrics/metrics.py):

* RA (retained accuracy) = mean_j R[T-1, j]
* BTI = mean over all T tasks of (R[T-1, j] - R[j, j]); the authors divide by T, counting the last
  task's zero term, and so do we, so numbers compare with the paper
* BWT = the same over the first T-1 tasks only (the GEM paper's definition)
* learning accuracy = mean_j R[j, j], each task right after it was learned
* FWT = mean over j >= 1 of (R[j-1, j] - baseline[j]) (GEM paper, divides by T-1; the authors' code
  divides by T)

``anytime_metrics`` reads the curve of anytime evaluation instead (AAA, min-ACC, WC-ACC).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def ra_so_far(row: np.ndarray, task: int) -> float | None:
    """RA after learning ``task``: the mean of ``row[:task + 1]``, the tasks seen; None when one of them was
    not evaluated (NaN: ``evaluate=metrics``, the default, reads only the task just learned and the next
    before the last row), whose mean would be another number under RA's name."""
    seen = np.asarray(row[:task + 1], dtype=float)
    return None if np.isnan(seen).any() else float(seen.mean())


def progress_text(rows: Sequence[np.ndarray], task: int) -> str:
    """What a progress line says after ``task``: the RA so far, or the accuracy on the task just learned
    where the run does not measure that RA; one figure per row of ``rows`` (one per seed of a batched
    run), ``RA 76.10 / 75.02 %``."""
    ras = [ra_so_far(row, task) for row in rows]
    if None not in ras:
        return f"RA {' / '.join(f'{ra:.2f}' for ra in ras)} %"
    return f"task {task + 1} accuracy {' / '.join(f'{float(row[task]):.2f}' for row in rows)} %"


def summarize(acc_matrix: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Metrics in percent; a metric whose matrix entries were not measured (NaN) is None."""
    R = np.asarray(acc_matrix, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    T = len(R)
    final, learned = R[-1], np.diag(R)
    forgetting = final - learned
    metrics = {
        "ra": float(final.mean()),
        "bti": float(forgetting.mean()),
        "bwt": float(forgetting[:-1].mean()) if T > 1 else 0.0,
        "learning_accuracy": float(learned.mean()),
        "fwt": float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)])) if T > 1 else 0.0,
    }
    return {key: None if np.isnan(value) else value for key, value in metrics.items()}


def anytime_metrics(points: list[dict]) -> dict[str, float | None]:
    """Metrics of an anytime-evaluation curve (engine/anytime.py), in percent.

    Each point: ``task`` (the task being learned), ``accuracies`` (one per task 0..task) and
    ``accuracy`` (their mean).

    * AAA, average anytime accuracy (Caccia et al. 2022, "New Insights on Reducing Abrupt
      Representation Change in Online Continual Learning"): the mean over evaluation points of the
      mean accuracy on the tasks seen so far
    * min-ACC, average minimum accuracy (De Lange et al. 2023, "Continual evaluation for lifelong
      learning: identifying the stability gap", as their code computes it): for each task before the
      last, the minimum of its accuracy over the points after it was learned (while later tasks are
      learned), averaged over those tasks; None for one task
    * WC-ACC, worst-case accuracy (the same paper), at the end of the stream of k tasks:
      (1/k) x the last task's final accuracy + (1 - 1/k) x min-ACC

    The minima are over the points evaluated (every ``eval_every`` batches and each task's end): a
    sparser curve can miss a dip, so they are upper bounds of the per-update ones.
    """
    if not points:
        return {"aaa": None, "min_acc": None, "worst_case_accuracy": None}
    minima: dict[int, float] = {}
    for point in points:
        for task, accuracy in enumerate(point["accuracies"][:point["task"]]):
            minima[task] = min(minima.get(task, math.inf), accuracy)
    last = points[-1]
    k = last["task"] + 1
    min_acc = float(np.mean(list(minima.values()))) if minima else None
    final = float(last["accuracies"][last["task"]])
    return {"aaa": float(np.mean([p["accuracy"] for p in points])), "min_acc": min_acc,
            "worst_case_accuracy": final if min_acc is None else final / k + (1 - 1 / k) * min_acc}
