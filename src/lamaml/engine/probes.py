"""Measurements taken during a run for the paper's analyses; they never change the run itself.

* ``alignment`` (appendix D): as task t arrives, the mean pairwise cosine similarity between the
  loss gradients of the old tasks 0..t-1, each on held-out (test) samples of its own, at the
  current weights. Defined from the third task on (two old tasks are needed for one pair).
* ``fast-weights`` (the blog's figure 6): every ``analysis_every`` meta-updates, the retained
  accuracy (mean over the tasks seen so far, the current one included) at the fast weights the
  last inner loop reached, and at the weights right after that meta-update.
* ``lr-stats``: every ``analysis_every`` updates, per parameter tensor, the mean of the learned
  rates alpha and the fraction of them at or below zero (rates that switch the update off).

Probes read a fixed slice of each test set (the first ``analysis_samples`` images: no random
draw, so the run's generators are untouched), run under ``torch.no_grad`` except the alignment
gradients, and restore every weight they touch; the loop excludes their time from training time.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from ..data import TaskStream
from .evaluate import eval_mode, task_id_at_test
from .plugins import Plugin

ANALYSES = ("alignment", "fast-weights", "lr-stats")


@contextmanager
def weights_swapped(model: torch.nn.Module, weights: dict[str, torch.Tensor]):
    """Temporarily give ``model`` other values for its parameters (restored exactly)."""
    params = dict(model.named_parameters())
    saved = {name: p.detach().clone() for name, p in params.items()}
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)


def cosine_matrix(gradients: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarities of the rows of ``gradients`` (tasks x parameters)."""
    unit = gradients / gradients.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


def mean_off_diagonal(matrix: torch.Tensor) -> float:
    n = matrix.shape[0]
    return float((matrix.sum() - matrix.diagonal().sum()) / (n * (n - 1)))


class Probes(Plugin):
    needs_task_stream = True
    def __init__(self, analyses: list[str], stream: TaskStream, device: torch.device, every: int,
                 samples: int):
        self.analyses, self.every, self.device = set(analyses), every, device
        self._stream, self._samples = stream, samples
        self._cache: dict[int, Any] = {}
        self.series: dict[str, list] = {}

    def _held_out(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        if task not in self._cache:
            x, y = self._stream[task].test()
            self._cache[task] = (x[:self._samples].to(self.device), y[:self._samples].to(self.device))
        return self._cache[task]

    # -- the run loop's hooks ---------------------------------------------------------------

    def run_starts(self, run) -> None:
        """Write into the progress's ``series`` (kept in checkpoints); ask the method to keep its fast weights."""
        self.series = run.progress.series
        for name in sorted(self.analyses):
            self.series.setdefault(name, [])
        if "fast-weights" in self.analyses:
            run.method.record_fast_weights = True   # the config check ensures the method has them

    def task_starts(self, run, task: int) -> None:
        if "alignment" in self.analyses and task >= 2:
            self.series["alignment"].append({"task": task, "cosine": self.alignment(run.method, task)})

    def update_done(self, run, task: int, updates: int) -> None:
        if updates % self.every:
            return
        method = run.method
        if "fast-weights" in self.analyses and getattr(method, "fast_weights", None) is not None:
            with weights_swapped(method.model, method.fast_weights):
                fast = self.retained_accuracy(method, task)
            self.series["fast-weights"].append({"update": updates, "task": task, "ra_fast": fast,
                                                "ra_after": self.retained_accuracy(method, task)})
        if "lr-stats" in self.analyses and hasattr(method, "alpha"):
            for name, alpha in ((n, a.detach()) for n, a in method.alpha.items()):
                self.series["lr-stats"].append({
                    "update": updates, "task": task, "parameter": name, "mean": float(alpha.mean()),
                    "fraction_nonpositive": float((alpha <= 0).float().mean())})

    # -- the measurements ------------------------------------------------------------------

    def alignment(self, method, task: int) -> float:
        params = [p for p in method.model.parameters() if p.requires_grad]
        rows = []
        with eval_mode(method.model):   # a measurement: no BatchNorm statistics updated, no dropout drawn
            for old in range(task):
                x, y = self._held_out(old)
                loss = method.loss(method.model(x), y, old)
                rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
        return mean_off_diagonal(cosine_matrix(torch.stack(rows)))

    @torch.no_grad()
    def retained_accuracy(self, method, task: int) -> float:
        correct = total = 0
        with eval_mode(method.model):
            for seen in range(task + 1):
                x, y = self._held_out(seen)
                correct += int((method.predict(x, task_id_at_test(self._stream, seen)).argmax(1) == y).sum())
                total += len(y)
        return 100.0 * correct / total
