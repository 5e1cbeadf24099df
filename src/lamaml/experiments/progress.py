"""What a run shows while it trains: a progress bar on stderr and, if asked, a TensorBoard log.

``RunHooks`` is what ``engine.run`` takes as ``progress``: called with the stream, the config and
the checkpoint being resumed (or None), it returns the loop's hooks (``on_batch``, ``on_task``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable


def progress_bar_hooks(stream, config, resume: dict | None = None) -> dict[str, Callable]:
    """A tqdm bar over every batch of the run (on stderr; off when stderr is not a terminal), started
    where a resumed run left off, showing the task and the RA so far after each task."""
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
            position["epoch"] * per_task[min(position["task"], len(per_task) - 1)] // config.epochs + position["batch"]
            if position["task"] < len(per_task) else 0)
    bar = tqdm(total=sum(per_task), initial=done, unit="batch", dynamic_ncols=True,
               desc=f"{config.method} on {config.benchmark}", file=sys.stderr, disable=None)

    def on_batch(task, loss):
        bar.update(1)

    def on_task(task, row):
        bar.set_postfix(task=f"{task + 1}/{len(stream)}", ra=f"{row[:task + 1].mean():.1f}")
        if task == len(stream) - 1:
            bar.close()
    return {"on_batch": on_batch, "on_task": on_task}


def chain(first: Callable | None, second: Callable) -> Callable:
    """One hook that calls two (the first may be None)."""
    if first is None:
        return second

    def both(*args):
        first(*args)
        second(*args)
    return both


class RunHooks:
    """The progress bar unless ``quiet``, and a TensorBoard log in ``tensorboard`` if given; call
    ``finish(metrics)`` once the run is done to write the final metrics to the log and close it."""

    def __init__(self, quiet: bool = False, tensorboard: Path | None = None):
        self.quiet, self.tensorboard = quiet, tensorboard
        self._finish_log: Callable[[dict], None] | None = None

    def __call__(self, stream, config, resume: dict | None) -> dict[str, Callable]:
        hooks = {} if self.quiet else progress_bar_hooks(stream, config, resume)
        if self.tensorboard:
            from ..trackers import tensorboard_hooks
            tracker, self._finish_log = tensorboard_hooks(Path(self.tensorboard), len(stream))
            hooks = {name: chain(hooks.get(name), tracker[name]) for name in tracker}
        return hooks

    def finish(self, metrics: dict[str, Any]) -> None:
        if self._finish_log:
            self._finish_log(metrics)
