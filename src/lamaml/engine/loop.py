"""The run loop: tasks > epochs > batches > glances, evaluation after every task.

It knows the ``observe``/``predict`` contract and nothing of any particular method.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..data import TaskStream
from ..errors import RunFailed
from .evaluate import evaluate_all
from .metrics import summarize


@dataclass
class StreamResult:
    acc_matrix: np.ndarray                  # (T, T) percent
    baseline: np.ndarray                    # (T,) percent, before any training
    train_time_s: float
    eval_time_s: float
    updates: int = 0                        # observe() calls: one per glance at a batch
    losses: list[float] = field(default_factory=list)   # mean loss per task

    @property
    def metrics(self) -> dict[str, float]:
        return summarize(self.acc_matrix, self.baseline)

    @property
    def ra(self) -> float:
        return self.metrics["ra"]

    @property
    def bti(self) -> float:
        return self.metrics["bti"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_on_stream(method, stream: TaskStream, *, epochs: int, batch_size: int, glances: int,
                    generator: torch.Generator, device: torch.device, eval_batch_size: int = 10000,
                    evaluate: str = "all",
                    on_batch: Callable[[int, float], None] | None = None,
                    on_task: Callable[[int, np.ndarray], None] | None = None) -> StreamResult:
    """Train ``method`` on each task in turn and fill the accuracy matrix.

    The loss is checked once per incoming batch: a NaN or infinite loss stops the run with a
    RunFailed naming where it happened, instead of silently training on garbage.
    ``evaluate="seen"`` skips, after task t, the tasks after t + 1: no metric reads them, and on
    100-task streams they are half the evaluation time. Their matrix entries stay NaN.
    """
    if method.joint:
        return train_jointly(method, stream, epochs=epochs, batch_size=batch_size, glances=glances,
                             generator=generator, device=device, eval_batch_size=eval_batch_size,
                             on_batch=on_batch, on_task=on_task)
    T = len(stream)
    matrix = np.zeros((T, T))
    train_time = eval_time = 0.0

    start = time.perf_counter()
    baseline = evaluate_all(method, stream, device, eval_batch_size)
    eval_time += time.perf_counter() - start

    task_losses, updates = [], 0
    for t, task in enumerate(stream):
        start = time.perf_counter()
        x, y = task.train()
        x, y = x.to(device), y.to(device)
        n_batches = math.ceil(len(x) / batch_size)
        loss_sum = 0.0
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator).to(device)
            for b in range(n_batches):
                rows = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = x[rows], y[rows]
                for glance in range(glances):
                    loss = method.observe(xb, yb, task.index, epoch=epoch, glance=glance)
                value = float(loss)
                if not math.isfinite(value):
                    raise RunFailed(f"the loss became {value} at task {t}, epoch {epoch}, batch {b}: "
                                    f"training diverged; lower the learning rates or clip harder")
                loss_sum += value
                if on_batch:
                    on_batch(t, value)
        updates += epochs * n_batches * glances
        _sync(device)
        train_time += time.perf_counter() - start
        task_losses.append(loss_sum / (epochs * n_batches))

        start = time.perf_counter()
        upto = t + 2 if evaluate == "seen" else None
        matrix[t] = evaluate_all(method, stream, device, eval_batch_size, upto)
        eval_time += time.perf_counter() - start
        if on_task:
            on_task(t, matrix[t])
    return StreamResult(matrix, baseline, train_time, eval_time, updates, task_losses)


def train_jointly(method, stream: TaskStream, *, epochs: int, batch_size: int, glances: int,
                  generator: torch.Generator, device: torch.device, eval_batch_size: int,
                  on_batch=None, on_task=None) -> StreamResult:
    """The IID oracle's protocol: all tasks' samples shuffled together, then one evaluation.

    Only the last row of the accuracy matrix exists; the others stay NaN, and so do the metrics
    that need them (BTI, learning accuracy, FWT).
    """
    T = len(stream)
    start = time.perf_counter()
    baseline = evaluate_all(method, stream, device, eval_batch_size)
    eval_time = time.perf_counter() - start

    start = time.perf_counter()
    parts = [task.train() for task in stream]
    x = torch.cat([p[0] for p in parts]).to(device)
    y = torch.cat([p[1] for p in parts]).to(device)
    tasks = torch.cat([torch.full((len(p[1]),), task.index) for p, task in zip(parts, stream)]).to(device)
    n_batches, loss_sum = math.ceil(len(x) / batch_size), 0.0
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        for b in range(n_batches):
            rows = order[b * batch_size:(b + 1) * batch_size]
            for glance in range(glances):
                loss = method.observe(x[rows], y[rows], tasks[rows], epoch=epoch, glance=glance)
            value = float(loss)
            if not math.isfinite(value):
                raise RunFailed(f"the loss became {value} at epoch {epoch}, batch {b}: training diverged; "
                                f"lower the learning rate or clip harder")
            loss_sum += value
            if on_batch:
                on_batch(T - 1, value)
    _sync(device)
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    matrix = np.full((T, T), np.nan)
    matrix[-1] = evaluate_all(method, stream, device, eval_batch_size)
    eval_time += time.perf_counter() - start
    if on_task:
        on_task(T - 1, matrix[-1])
    return StreamResult(matrix, baseline, train_time, eval_time, epochs * n_batches * glances,
                        [loss_sum / (epochs * n_batches)])
