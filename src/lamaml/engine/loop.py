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
from ..errors import RunFailed, UserError
from .checkpoint import fault_point
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
    train_time_after_task: list[float] = field(default_factory=list)
    series: dict[str, list] = field(default_factory=dict)
    test_matrix: np.ndarray | None = None   # benchmarks with a validation split: acc_matrix is on it
    test_baseline: np.ndarray | None = None

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


@dataclass
class Progress:
    """Where a run stands: the next (task, epoch, batch), and everything measured so far."""

    matrix: np.ndarray
    baseline: np.ndarray | None = None
    task: int = 0
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None      # this epoch's sample order, while inside an epoch
    loss_sum: float = 0.0
    train_time: float = 0.0
    eval_time: float = 0.0
    updates: int = 0
    task_losses: list[float] = field(default_factory=list)
    train_time_after_task: list[float] = field(default_factory=list)   # cumulative, seconds
    series: dict[str, list] = field(default_factory=dict)               # the probes' measurements
    test_matrix: np.ndarray | None = None   # with a validation split, the matrix on the test split
    test_baseline: np.ndarray | None = None

    ARRAYS = ("matrix", "baseline", "test_matrix", "test_baseline")

    def state_dict(self) -> dict:
        state = dict(self.__dict__)
        for key in self.ARRAYS:   # tensors, so the checkpoint loads with weights_only
            state[key] = None if state[key] is None else torch.from_numpy(state[key].copy())
        state["order"] = None if self.order is None else self.order.cpu()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Progress":
        state = dict(state)
        for key in cls.ARRAYS:
            state[key] = None if state.get(key) is None else state[key].numpy()
        return cls(**state)


def check_parameters(method, where: str) -> None:
    """Stop on a NaN or infinite weight, naming the first such tensor and where it happened."""
    for name, p in method.model.named_parameters():
        if not torch.isfinite(p).all():
            bad = p[~torch.isfinite(p)].flatten()[0].item()
            raise RunFailed(f"parameter {name} became {bad} {where}: training diverged; "
                            f"lower the learning rates or clip harder")


def train_on_stream(method, stream: TaskStream, *, epochs: int, batch_size: int, glances: int,
                    generator: torch.Generator, device: torch.device, eval_batch_size: int = 10000,
                    evaluate: str = "all",
                    on_batch: Callable[[int, float], None] | None = None,
                    on_task: Callable[[int, np.ndarray], None] | None = None,
                    checkpointer=None, resume: dict | None = None, train_threads: int | None = None,
                    probes=None) -> StreamResult:
    """Train ``method`` on each task in turn and fill the accuracy matrix.

    The loss is checked once per incoming batch, the weights once per task: a NaN or infinite
    value stops the run with a RunFailed naming where it happened, before any checkpoint could
    keep it. ``evaluate="seen"`` skips, after task t, the tasks after t + 1: no metric reads
    them, and on 100-task streams they are half the evaluation time (their entries stay NaN).
    ``evaluate="metrics"`` keeps only what the metrics read: after task t, tasks t and t + 1,
    and every task after the last one (3T evaluations instead of T^2).
    With a ``checkpointer`` the state is saved as it asks; ``resume`` (a loaded checkpoint)
    continues from exactly where that state stood. ``probes`` (engine.probes.Probes) measure
    the analyses' series at task starts and after updates, outside the training time.
    """
    if method.joint:
        if probes is not None:
            raise UserError(f"{getattr(method, 'name', 'this method')} trains on all tasks at once; "
                            f"the analyses follow a stream of tasks")
        if checkpointer is not None or resume is not None:
            raise UserError(f"{getattr(method, 'name', 'this method')} trains on all tasks at once; "
                            f"checkpoints inside its run are not supported yet")
        return train_jointly(method, stream, epochs=epochs, batch_size=batch_size, glances=glances,
                             generator=generator, device=device, eval_batch_size=eval_batch_size,
                             on_batch=on_batch, on_task=on_task)
    T = len(stream)
    method.glances = glances
    if resume is not None:
        progress = Progress.from_state(resume["progress"])
        method.load_state_dict(resume["method"])
        generator.set_state(resume["order_generator"])
    else:
        progress = Progress(np.full((T, T), np.nan))
    if probes is not None:
        probes.start(method, progress.series)

    def probe(hook, *args) -> float:
        """Run a probe; return its duration so the caller keeps it out of the training time."""
        if probes is None:
            return 0.0
        start = time.perf_counter()
        getattr(probes, hook)(method, *args)
        return time.perf_counter() - start

    def save() -> None:
        checkpointer.save({"progress": progress.state_dict(), "method": method.state_dict(),
                           "order_generator": generator.get_state()})

    # RA and BTI read the validation split where the benchmark has one; its test split is reported too.
    split = "val" if stream.has_validation else "test"
    if progress.baseline is None:
        start = time.perf_counter()
        progress.baseline = evaluate_all(method, stream, device, eval_batch_size, split=split)
        if stream.has_validation:
            progress.test_baseline = evaluate_all(method, stream, device, eval_batch_size)
            progress.test_matrix = np.full((T, T), np.nan)
        progress.eval_time += time.perf_counter() - start

    eval_threads = torch.get_num_threads()
    try:
        for t in range(progress.task, T):
            task = stream[t]
            torch.set_num_threads(train_threads or eval_threads)
            clock = time.perf_counter()
            if progress.epoch == 0 and progress.batch == 0:
                clock += probe("task_starts", t)
            x, y = task.train()
            x, y = x.to(device), y.to(device)
            n_batches = math.ceil(len(x) / batch_size)
            for epoch in range(progress.epoch, epochs):
                progress.epoch = epoch
                if progress.order is None:
                    progress.order = torch.randperm(len(x), generator=generator)
                order = progress.order.to(device)
                for b in range(progress.batch, n_batches):
                    rows = order[b * batch_size:(b + 1) * batch_size]
                    xb, yb = x[rows], y[rows]
                    if task.prepare is not None:   # e.g. augment and normalize stored uint8 images
                        xb = task.prepare(xb, generator)
                    for glance in range(glances):
                        loss = method.observe(xb, yb, task.index, epoch=epoch, glance=glance)
                        clock += probe("update_done", t, progress.updates + glance + 1)
                    value = float(loss)
                    if not math.isfinite(value):
                        raise RunFailed(f"the loss became {value} at task {t}, epoch {epoch}, batch {b}: "
                                        f"training diverged; lower the learning rates or clip harder")
                    progress.batch, progress.loss_sum = b + 1, progress.loss_sum + value
                    progress.updates += glances
                    if on_batch:
                        on_batch(t, value)
                    fault_point("batch")
                    if checkpointer and checkpointer.due(task_done=False, tasks_done=t):
                        now = time.perf_counter()
                        progress.train_time, clock = progress.train_time + now - clock, now
                        save()
                progress.batch, progress.order = 0, None
            if hasattr(method, "end_task"):      # optional in the contract (iCaRL chooses exemplars here)
                method.end_task(task.index)
            _sync(device)
            progress.train_time += time.perf_counter() - clock
            progress.train_time_after_task.append(progress.train_time)
            torch.set_num_threads(eval_threads)
            check_parameters(method, f"during task {t}")
            progress.task_losses.append(progress.loss_sum / (epochs * n_batches))

            start = time.perf_counter()
            upto = t + 2 if evaluate == "seen" else None
            only = [t, t + 1] if evaluate == "metrics" and t < T - 1 else None
            progress.matrix[t] = evaluate_all(method, stream, device, eval_batch_size, upto, split, only)
            if progress.test_matrix is not None:
                progress.test_matrix[t] = evaluate_all(method, stream, device, eval_batch_size, upto, only=only)
            progress.eval_time += time.perf_counter() - start
            progress.task, progress.epoch, progress.loss_sum = t + 1, 0, 0.0
            if on_task:
                on_task(t, progress.matrix[t])
            if checkpointer and checkpointer.due(task_done=True, tasks_done=t + 1):
                save()

    finally:
        torch.set_num_threads(eval_threads)
    return StreamResult(progress.matrix, progress.baseline, progress.train_time, progress.eval_time,
                        progress.updates, progress.task_losses, progress.train_time_after_task,
                        progress.series, progress.test_matrix, progress.test_baseline)


def train_jointly(method, stream: TaskStream, *, epochs: int, batch_size: int, glances: int,
                  generator: torch.Generator, device: torch.device, eval_batch_size: int,
                  on_batch=None, on_task=None) -> StreamResult:
    """The IID oracle's protocol: all tasks' samples together, then one evaluation.

    Each epoch's batches come from the method's ``joint_batches(tasks, batch_size, generator)``
    where it has one (row indices into the union), else from one random pass over the union.
    Only the last row of the accuracy matrix exists; the others stay NaN, and so do the metrics
    that need them (BTI, learning accuracy, FWT).
    """
    T = len(stream)
    method.glances = glances
    split = "val" if stream.has_validation else "test"
    start = time.perf_counter()
    baseline = evaluate_all(method, stream, device, eval_batch_size, split=split)
    test_baseline = evaluate_all(method, stream, device, eval_batch_size) if stream.has_validation else None
    eval_time = time.perf_counter() - start
    prepare = stream[0].prepare   # the benchmarks' tasks share one input pipeline

    start = time.perf_counter()
    parts = [task.train() for task in stream]
    x = torch.cat([p[0] for p in parts]).to(device)
    y = torch.cat([p[1] for p in parts]).to(device)
    task_ids = torch.cat([torch.full((len(p[1]),), task.index) for p, task in zip(parts, stream)])
    tasks = task_ids.to(device)

    def one_pass():
        order = torch.randperm(len(x), generator=generator)
        return (order[b:b + batch_size] for b in range(0, len(x), batch_size))

    loss_sum, n_updates, n_batches = 0.0, 0, 0
    for epoch in range(epochs):
        batches = (method.joint_batches(task_ids, batch_size, generator) if hasattr(method, "joint_batches")
                   else one_pass())
        for b, rows in enumerate(batches):
            rows = rows.to(device)
            xb = x[rows] if prepare is None else prepare(x[rows], generator)
            for glance in range(glances):
                loss = method.observe(xb, y[rows], tasks[rows], epoch=epoch, glance=glance)
            value = float(loss)
            if not math.isfinite(value):
                raise RunFailed(f"the loss became {value} at epoch {epoch}, batch {b}: training diverged; "
                                f"lower the learning rate or clip harder")
            loss_sum, n_updates, n_batches = loss_sum + value, n_updates + glances, n_batches + 1
            if on_batch:
                on_batch(T - 1, value)
    _sync(device)
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    matrix = np.full((T, T), np.nan)
    matrix[-1] = evaluate_all(method, stream, device, eval_batch_size, split=split)
    test_matrix = None
    if stream.has_validation:
        test_matrix = np.full((T, T), np.nan)
        test_matrix[-1] = evaluate_all(method, stream, device, eval_batch_size)
    eval_time += time.perf_counter() - start
    if on_task:
        on_task(T - 1, matrix[-1])
    return StreamResult(matrix, baseline, train_time, eval_time, n_updates,
                        [loss_sum / n_batches], test_matrix=test_matrix, test_baseline=test_baseline)
