"""The run loop: phases > epochs > batches > glances, evaluation after every phase.

A phase is one task of the stream, or, for a method trained on all tasks at once (the IID
oracle), the union of every task. The loop owns the task boundaries, epochs and glances and
calls the method's contract (``begin_task``, ``observe``, ``end_batch``, ``end_task``,
``predict``); it knows nothing of any particular method.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..data import TaskStream
from ..errors import RunFailed, UserError
from .checkpoint import fault_point
from .evaluate import evaluate_all
from .metrics import summarize
from .plugins import Plugin, RunState, refuse_for_joint
from .progress import Progress


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
    heads: str = "single"                   # "task-aware": each task's loss and prediction saw only its classes
    anytime: list[dict] = field(default_factory=list)   # anytime evaluation's curve (engine/anytime.py)
    scenario: str | None = None             # the stream's: task-il, class-il or domain-il

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


def check_parameters(method, where: str) -> None:
    """Stop on a NaN or infinite weight, naming the first such tensor and where it happened."""
    for name, p in method.model.named_parameters():
        if not torch.isfinite(p).all():
            bad = p[~torch.isfinite(p)].flatten()[0].item()
            raise RunFailed(f"parameter {name} became {bad} {where}: training diverged; "
                            f"lower the learning rates or clip harder")


@dataclass
class Phase:
    """One stretch of training followed by one evaluation."""

    row: int                                # the accuracy-matrix row its evaluation fills
    task: int | None                        # the task id; None: every task at once (ids per sample)
    prepare: Callable | None                # the input pipeline of its samples (augment, normalize)
    load: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]   # x, y, task ids


def stream_phases(stream: TaskStream) -> list[Phase]:
    def load(task):
        return lambda: (*task.train(), None)
    return [Phase(t, task.index, task.prepare, load(task)) for t, task in enumerate(stream)]


def joint_phase(stream: TaskStream) -> list[Phase]:
    """Every task's training samples together (the tasks of a benchmark share one input pipeline)."""
    def load():
        parts = [task.train() for task in stream]
        ids = torch.cat([torch.full((len(y),), task.index) for (_, y), task in zip(parts, stream)])
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]), ids
    return [Phase(len(stream) - 1, None, stream[0].prepare, load)]


def epoch_batches(method, phase: Phase, ids: torch.Tensor | None, n: int, batch_size: int, progress: Progress,
                  generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of each batch of one epoch, from ``progress.batch`` on.

    A task: slices of a random order, kept in ``progress`` so a resumed run continues it. All
    tasks at once: the method's ``joint_batches`` where it has one, else one random pass.
    """
    if phase.task is None and hasattr(method, "joint_batches"):
        yield from method.joint_batches(ids, batch_size, generator)
        return
    if progress.order is None:
        progress.order = torch.randperm(n, generator=generator)
    for b in range(progress.batch, math.ceil(n / batch_size)):
        yield progress.order[b * batch_size:(b + 1) * batch_size]


def learn_batch(method, x, y, task, *, glances: int, first_epoch: bool,
                after_update: Callable[[int], None] | None = None) -> torch.Tensor:
    """One incoming batch as the loop hands it to a method: ``glances`` observes, then ``end_batch``.
    ``after_update(glance)`` runs after each observe. Returns the last glance's loss."""
    for glance in range(glances):
        loss = method.observe(x, y, task, first_sight=first_epoch and glance == 0)
        if after_update is not None:
            after_update(glance)
    method.end_batch(x, y, task, first_sight=first_epoch)
    return loss


def check_loss(value: float, phase: Phase, epoch: int, batch: int) -> None:
    if not math.isfinite(value):
        where = f"task {phase.row}, " if phase.task is not None else ""
        raise RunFailed(f"the loss became {value} at {where}epoch {epoch}, batch {batch}: "
                        f"training diverged; lower the learning rates or clip harder")


def train(method, stream: TaskStream, *, epochs: int, batch_size: int, glances: int,
          generator: torch.Generator, device: torch.device, eval_batch_size: int = 10000,
          evaluate: str = "all", plugins: Sequence[Plugin] = (), resume: dict | None = None,
          train_threads: int | None = None) -> StreamResult:
    """Train ``method`` on ``stream`` (task by task, or all at once where ``method.joint``) and fill
    the accuracy matrix.

    The loss is checked once per incoming batch, the weights once per phase: a NaN or infinite
    value stops the run with a RunFailed naming where it happened, before any checkpoint could
    keep it. ``evaluate="seen"`` skips, after task t, the tasks after t + 1: no metric reads
    them, and on 100-task streams they are half the evaluation time (their entries stay NaN).
    ``evaluate="metrics"`` keeps only what the metrics read: after task t, tasks t and t + 1,
    and every task after the last one (3T evaluations instead of T^2). ``resume`` (a loaded
    checkpoint) continues from exactly where that state stood. A joint method fills only the
    last row; the metrics that need the others (BTI, learning accuracy, FWT) stay NaN.
    """
    T = len(stream)
    refuse_for_joint(method, plugins, resume)
    if not stream.task_ids_at_test and getattr(method, "needs_task_id_at_test", False):
        raise UserError(f"{getattr(method, 'name', 'this method')} predicts with the task id; "
                        f"a {stream.scenario} stream gives none at test time")
    phases = joint_phase(stream) if method.joint else stream_phases(stream)
    if resume is not None:
        progress = Progress.from_state(resume["progress"])
        method.load_state_dict(resume["method"])
        generator.set_state(resume["order_generator"])
    else:
        progress = Progress(np.full((T, T), np.nan))
    run = RunState(method, progress, generator)

    def call(hook: str, *args) -> float:
        """Call ``hook`` on every plugin; return the time taken, which is not training time."""
        start = time.perf_counter()
        for plugin in plugins:
            getattr(plugin, hook)(run, *args)
        return time.perf_counter() - start

    # RA and BTI read the validation split where the benchmark has one; its test split is reported too.
    split = "val" if stream.has_validation else "test"
    if progress.baseline is None:
        start = time.perf_counter()
        progress.baseline = evaluate_all(method, stream, device, eval_batch_size, split=split)
        if stream.has_validation:
            progress.test_baseline = evaluate_all(method, stream, device, eval_batch_size)
            progress.test_matrix = np.full((T, T), np.nan)
        progress.eval_time += time.perf_counter() - start
    call("run_starts")

    eval_threads = torch.get_num_threads()
    try:
        for index in range(progress.task, len(phases)):
            phase, t = phases[index], phases[index].row
            torch.set_num_threads(train_threads or eval_threads)
            if progress.epoch == 0 and progress.batch == 0:
                call("task_starts", t)
                method.begin_task(phase.task)
            clock = time.perf_counter()
            x, y, ids = phase.load()
            x, y = x.to(device), y.to(device)
            device_ids = None if ids is None else ids.to(device)
            for epoch in range(progress.epoch, epochs):
                progress.epoch = epoch
                for rows in epoch_batches(method, phase, ids, len(x), batch_size, progress, generator):
                    rows = rows.to(device)
                    xb, yb = x[rows], y[rows]
                    task = phase.task if ids is None else device_ids[rows]
                    if phase.prepare is not None:   # e.g. augment and normalize stored uint8 images
                        xb = phase.prepare(xb, generator)
                    def after_update(glance: int) -> None:
                        nonlocal clock
                        clock += call("update_done", t, progress.updates + glance + 1)
                    loss = learn_batch(method, xb, yb, task, glances=glances, first_epoch=epoch == 0,
                                       after_update=after_update if plugins else None)
                    value = float(loss)
                    check_loss(value, phase, epoch, progress.batch)
                    progress.batch, progress.updates = progress.batch + 1, progress.updates + glances
                    progress.loss_sum, progress.loss_count = progress.loss_sum + value, progress.loss_count + 1
                    fault_point("batch")
                    now = time.perf_counter()
                    progress.train_time, clock = progress.train_time + now - clock, now
                    clock += call("batch_done", t, value)
                progress.batch, progress.order = 0, None
            method.end_task(phase.task)
            _sync(device)
            progress.train_time += time.perf_counter() - clock
            progress.train_time_after_task.append(progress.train_time)
            torch.set_num_threads(eval_threads)
            check_parameters(method, f"during task {t}" if phase.task is not None else "in training")
            progress.task_losses.append(progress.loss_sum / max(progress.loss_count, 1))

            start = time.perf_counter()
            upto = t + 2 if evaluate == "seen" else None
            only = [t, t + 1] if evaluate == "metrics" and t < T - 1 else None
            progress.matrix[t] = evaluate_all(method, stream, device, eval_batch_size, upto, split, only)
            if progress.test_matrix is not None:
                progress.test_matrix[t] = evaluate_all(method, stream, device, eval_batch_size, upto, only=only)
            progress.eval_time += time.perf_counter() - start
            progress.task, progress.epoch = index + 1, 0
            progress.loss_sum, progress.loss_count = 0.0, 0
            call("task_done", t, progress.matrix[t])
    finally:
        torch.set_num_threads(eval_threads)
    return StreamResult(progress.matrix, progress.baseline, progress.train_time, progress.eval_time,
                        progress.updates, progress.task_losses, progress.train_time_after_task,
                        progress.series, progress.test_matrix, progress.test_baseline,
                        heads="single" if getattr(method, "heads", None) is None else "task-aware",
                        anytime=progress.anytime, scenario=stream.scenario)
