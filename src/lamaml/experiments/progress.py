"""What a run shows while it trains: a progress bar on stderr (one plain line per finished task
when stderr is not a terminal: a batch job's log) and, if asked, a TensorBoard log.

``RunPlugins`` is what ``engine.run`` takes as ``plugins``: called with the stream, the config and
the checkpoint being resumed (or None), it returns the run loop's plugins.
"""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..engine.metrics import progress_text, ra_so_far
from ..engine.plugins import Plugin


class ProgressBar(Plugin):
    """On a terminal, a tqdm bar over every batch of the run (on stderr), started where a resumed
    run left off, showing the task and the RA so far after each task. Elsewhere (a log file, a
    pipe) a bar would write nothing until it closes, so each finished task writes one plain line:
    ``la-maml on mnist-rotations: task 3/20 done, RA 81.20 %, 0:01:05 elapsed``."""

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
        self.tasks, self.label, self.start = len(stream), f"{config.method} on {config.benchmark}", time.monotonic()
        self.interactive = sys.stderr is not None and sys.stderr.isatty()
        self.bar = tqdm(total=sum(per_task), initial=done, unit="batch", dynamic_ncols=True,
                        desc=self.label, file=sys.stderr, disable=not self.interactive)

    def batch_done(self, run, task, loss):
        self.bar.update(1)

    def task_done(self, run, task, row):
        if self.interactive:
            ra = ra_so_far(row, task)
            self.bar.set_postfix(task=f"{task + 1}/{self.tasks}",
                                 **({"ra": f"{ra:.1f}"} if ra is not None else {"acc": f"{row[task]:.1f}"}))
        else:
            elapsed = timedelta(seconds=round(time.monotonic() - self.start))
            print(f"{self.label}: task {task + 1}/{self.tasks} done, {progress_text([row], task)}, {elapsed} elapsed",
                  file=sys.stderr, flush=True)
        if task == self.tasks - 1:
            self.bar.close()


class RunPlugins:
    """The progress bar unless ``quiet``, and a TensorBoard log in its own subfolder of ``tensorboard``
    if given; call ``finish(metrics)`` once the run is done to write the final metrics to the log and
    close it."""

    def __init__(self, quiet: bool = False, tensorboard: Path | None = None):
        self.quiet, self.tensorboard = quiet, tensorboard
        self.log = None

    def __call__(self, stream, config, resume: dict | None) -> list[Plugin]:
        plugins: list[Plugin] = [] if self.quiet else [ProgressBar(stream, config, resume)]
        if self.tensorboard:
            from .trackers import TensorBoard
            self.log = TensorBoard(Path(self.tensorboard), len(stream), config, resume)
            plugins.append(self.log)
        return plugins

    def finish(self, metrics: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.finish(metrics)
