"""What a run shows while it trains: a progress bar on stderr and, if asked, a TensorBoard log.

``RunPlugins`` is what ``engine.run`` takes as ``plugins``: called with the stream, the config and
the checkpoint being resumed (or None), it returns the run loop's plugins.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..engine.plugins import Plugin


class ProgressBar(Plugin):
    """A tqdm bar over every batch of the run (on stderr; off when stderr is not a terminal), started
    where a resumed run left off, showing the task and the RA so far after each task."""

    def __init__(self, stream, config, resume: dict | None = None):
        from tqdm import tqdm

        from ..methods import method_class
        per_task = [config.epochs * -(-task.n_train // config.batch_size) for task in stream]
        if method_class(config.method).joint:   # one pass over the union, or the method's own epoch length
            per_task = [config.epochs * (config.params.get("iterations") or -(-sum(t.n_train for t in stream)
                                                                              // config.batch_size))]
        done = 0
        if resume is not None:
            position = resume["progress"]
            done = sum(per_task[:position["task"]]) + (
                position["epoch"] * per_task[min(position["task"], len(per_task) - 1)] // config.epochs
                + position["batch"] if position["task"] < len(per_task) else 0)
        self.tasks = len(stream)
        self.bar = tqdm(total=sum(per_task), initial=done, unit="batch", dynamic_ncols=True,
                        desc=f"{config.method} on {config.benchmark}", file=sys.stderr, disable=None)

    def batch_done(self, run, task, loss):
        self.bar.update(1)

    def task_done(self, run, task, row):
        self.bar.set_postfix(task=f"{task + 1}/{self.tasks}", ra=f"{row[:task + 1].mean():.1f}")
        if task == self.tasks - 1:
            self.bar.close()


class RunPlugins:
    """The progress bar unless ``quiet``, and a TensorBoard log in ``tensorboard`` if given; call
    ``finish(metrics)`` once the run is done to write the final metrics to the log and close it."""

    def __init__(self, quiet: bool = False, tensorboard: Path | None = None):
        self.quiet, self.tensorboard = quiet, tensorboard
        self.log = None

    def __call__(self, stream, config, resume: dict | None) -> list[Plugin]:
        plugins: list[Plugin] = [] if self.quiet else [ProgressBar(stream, config, resume)]
        if self.tensorboard:
            from .trackers import TensorBoard
            self.log = TensorBoard(Path(self.tensorboard), len(stream))
            plugins.append(self.log)
        return plugins

    def finish(self, metrics: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.finish(metrics)
