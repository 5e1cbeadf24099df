"""Accuracy of a method on every task, in large batches, without gradients."""
from __future__ import annotations

import numpy as np
import torch

from ..data import TaskStream


@torch.no_grad()
def task_accuracy(method, x: torch.Tensor, y: torch.Tensor, task: int, device: torch.device,
                  batch_size: int) -> float:
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        yb = y[start:start + batch_size].to(device, non_blocking=True)
        correct += (method.predict(xb, task).argmax(1) == yb).sum()
    return 100.0 * correct.item() / len(x)


def evaluate_all(method, stream: TaskStream, device: torch.device, batch_size: int,
                 upto: int | None = None, split: str = "test") -> np.ndarray:
    """Accuracy (percent) on the ``split`` ("test" or "val") of every task (NaN past ``upto``)."""
    accuracies = np.full(len(stream), np.nan)
    for i, task in enumerate(stream[:upto] if upto is not None else stream):
        x, y = task.val() if split == "val" else task.test()
        accuracies[i] = task_accuracy(method, x, y, task.index, device, batch_size)
    return accuracies
