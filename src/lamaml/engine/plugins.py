"""What the run loop calls besides the method: progress, trackers, analyses' probes, checkpoints.

One list of ``Plugin`` objects; the loop calls each hook on every plugin in list order, at fixed
moments, and keeps the time they take out of the training time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UserError
from .progress import Progress


@dataclass
class RunState:
    """What a plugin may read (and a checkpoint must keep) while a run is under way."""

    method: Any
    progress: Progress
    generator: torch.Generator    # the loop's: sample orders and input augmentation


class Plugin:
    needs_task_stream = False   # True: meaningless for a method trained on all tasks at once

    def run_starts(self, run: RunState) -> None:
        """Before the first batch (also when a run resumes)."""

    def task_starts(self, run: RunState, task: int) -> None:
        """Before the first batch of a task (not when a run resumes inside it)."""

    def update_done(self, run: RunState, task: int, updates: int) -> None:
        """After each ``observe``; ``updates``: how many there have been in the run."""

    def batch_done(self, run: RunState, task: int, loss: float) -> None:
        """After the glances at an incoming batch; ``loss``: the last glance's."""

    def task_done(self, run: RunState, task: int, row: np.ndarray) -> None:
        """After a task is trained and evaluated; ``row``: its accuracy-matrix row (NaN: not evaluated)."""


def refuse_for_joint(method, plugins, resume: dict | None = None) -> None:
    """A method trained on all tasks at once cannot take plugins that need a stream of tasks."""
    if method.joint:
        refused = [type(p).__name__ for p in plugins if p.needs_task_stream] + (["resume"] if resume else [])
        if refused:
            raise UserError(f"{getattr(method, 'name', 'this method')} trains on all tasks at once; "
                            f"{', '.join(refused)} need a stream of tasks (analyses, anytime evaluation, "
                            f"checkpoints)")


class Callbacks(Plugin):
    """Two plain functions as a plugin: ``on_batch(task, loss)`` and ``on_task(task, row)``."""

    def __init__(self, on_batch: Callable[[int, float], None] | None = None,
                 on_task: Callable[[int, np.ndarray], None] | None = None):
        self.on_batch, self.on_task = on_batch, on_task

    def batch_done(self, run, task, loss):
        if self.on_batch:
            self.on_batch(task, loss)

    def task_done(self, run, task, row):
        if self.on_task:
            self.on_task(task, row)


class Checkpoints(Plugin):
    """Saves the run (progress, method, the loop's generator) whenever its ``Checkpointer`` says."""

    needs_task_stream = True   # a joint run could not resume mid-way

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def save(self, run: RunState) -> None:
        self.checkpointer.save({"progress": run.progress.state_dict(), "method": run.method.state_dict(),
                                "order_generator": run.generator.get_state()})

    def batch_done(self, run, task, loss):
        if self.checkpointer.due(task_done=False, tasks_done=task):
            self.save(run)

    def task_done(self, run, task, row):
        if self.checkpointer.due(task_done=True, tasks_done=task + 1):
            self.save(run)
