"""``lamaml run --seeds 0-4``: several seeds of one configuration, each recorded as its own run would be.

Where the seeds can train as one computation (``engine.seeds``: La-MAML-family runs on the
closed-form path) they do; otherwise they run one after another through ``run_recorded``, and
``note`` is told why. Either way each seed has its own store row and, with ``out``, its own folder
``out/seed<k>`` holding the ``metrics.json`` and ``status.json`` of a separate run.
"""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine.metrics import progress_text
from ..errors import RunFailed, UserError, WriteFailed
from .record import RunRecord
from .report import _pm, _stats
from .runs import check_writable, run_recorded


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed{seed}"


def describe_seeds(seeds: list[int]) -> str:
    """``0-4`` for a range, ``0,2,5`` otherwise."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


class TaskLines:
    """One line on stderr per finished task: each seed's RA so far (the batched run's progress)."""

    def __init__(self, config, seeds: list[int], tasks: int):
        self.label = f"{config.method} on {config.benchmark}, seeds {describe_seeds(seeds)}"
        self.tasks, self.start = tasks, time.monotonic()

    def __call__(self, task: int, rows: list[np.ndarray]) -> None:
        elapsed = timedelta(seconds=round(time.monotonic() - self.start))
        print(f"{self.label}: task {task + 1}/{self.tasks} done, {progress_text(rows, task)}, "
              f"{elapsed} elapsed",
              file=sys.stderr, flush=True)


def combined_line(metrics: list[dict[str, Any]]) -> str:
    """Mean +/- sample standard deviation of RA and BTI over the seeds, as ``lamaml report`` gives them."""
    seeds = describe_seeds([m["seed"] for m in metrics])
    ra, bti = (_pm(_stats([m[key] for m in metrics])) for key in ("ra", "bti"))
    return f"seeds {seeds} ({len(metrics)} runs): RA {ra} %, BTI {bti} % (mean +/- std over seeds)"


def run_seeds_recorded(config, seeds: list[int], *, data_dir: str | Path | None = None, download: bool = True,
                       out: Path | None = None, store: str | Path | None = None, quiet: bool = True,
                       tensorboard: Path | None = None, show: Callable[[dict[str, Any]], None] | None = None,
                       note: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run ``config`` once per seed and return each seed's metrics, recorded in ``store`` and under ``out``.

    ``show(metrics)`` is called for each seed as soon as it is done, before anything is written;
    ``note(reason)`` when the seeds run one after another instead of as one computation.
    """
    from ..engine.seeds import prepare_seeds, run_seeds, seed_configs
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UserError(f"--seeds {describe_seeds(seeds)}: give each seed once")
    configs = seed_configs(config, seeds)
    outs = [seed_folder(out, seed) if out else None for seed in seeds]
    for folder in outs:
        if folder:
            check_writable(folder)
    if len(seeds) == 1:           # nothing to batch: the run itself, as `--seed k` runs it
        runs, reason = None, None
    elif tensorboard:
        runs, reason = None, "TensorBoard logs each run on its own"
    else:
        runs, reason = prepare_seeds(configs, data_dir, download)
    if runs is None:
        if note and reason:
            note(f"{reason}; running the {len(seeds)} seeds one after another")
        return [run_recorded(c, data_dir=data_dir, download=download, out=folder, store=store, quiet=quiet,
                             tensorboard=tensorboard, show=show) for c, folder in zip(configs, outs)]
    records = []
    try:
        for c, folder in zip(configs, outs):
            records.append(RunRecord.open(c.model_dump(), folder, store, resumed=False))
        metrics = run_seeds(runs, None if quiet else TaskLines(config, seeds, len(runs.streams[0])))
    except (RunFailed, UserError, KeyboardInterrupt) as error:
        for record in records:
            record.failed(str(error) or "interrupted")
        raise
    problems = []
    for record, one in zip(records, metrics):
        if show:
            show(one)
        try:
            record.done(one, {"batched_seeds": len(metrics)})   # its times are a share of the batch's
        except WriteFailed as error:
            problems.append(str(error))
    if problems:
        raise WriteFailed("; ".join(problems))
    return metrics
