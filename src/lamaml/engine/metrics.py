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
"""
from __future__ import annotations

import numpy as np


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
