"""Accuracy of a method on every task, in large batches, without gradients, in eval mode; with the
task id where the stream's scenario gives it at test time (not in class-il)."""
from __future__ import annotations

import numpy as np
import torch

from ..data import TaskStream
from ..models.modes import eval_mode


def task_id_at_test(stream: TaskStream, position: int) -> int | None:
    """The task id evaluation hands ``predict`` for the stream's task at ``position``: its index, or None
    in class-il (no task id at test time: the prediction is the argmax over every output)."""
    return stream[position].index if stream.task_ids_at_test else None


@torch.no_grad()
def task_accuracy(method, x: torch.Tensor, y: torch.Tensor, task: int | None, device: torch.device,
                  batch_size: int) -> float:
    correct = torch.zeros((), dtype=torch.long, device=device)
    with eval_mode(method.model):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            yb = y[start:start + batch_size].to(device, non_blocking=True)
            correct += (method.predict(xb, task).argmax(1) == yb).sum()
    return 100.0 * correct.item() / len(x)


def evaluate_all(method, stream: TaskStream, device: torch.device, batch_size: int,
                 upto: int | None = None, split: str = "test", only: list[int] | None = None,
                 limit: int | None = None) -> np.ndarray:
    """Accuracy (percent) on the ``split`` ("test" or "val") of every task (NaN past ``upto``, or
    outside ``only`` when given), on the first ``limit`` samples of each (None: all)."""
    accuracies = np.full(len(stream), np.nan)
    chosen = range(len(stream))[:upto] if only is None else [i for i in only if i < len(stream)]
    for i in chosen:
        task = stream[i]
        x, y = task.first(split, limit)
        accuracies[i] = task_accuracy(method, x, y, task_id_at_test(stream, i), device, batch_size)
    return accuracies
