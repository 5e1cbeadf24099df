"""``lamaml run --seeds 0-4``: several seeds of one configuration, each recorded as its own run would be.

Where the seeds can train as one computation (``engine.seeds``: La-MAML-family runs on the
closed-form path) they do; otherwise they run one after another through ``run_recorded``, and
``note`` is told why. Either way each seed has its own store row and, with ``out``, its own folder
``out/seed<k>`` holding the ``metrics.json`` and ``status.json`` of a separate run.

An MLP run trains on one thread, so on a CPU of several cores the seeds are split into groups, one
worker process per core (``seed_processes``): five seeds on two cores train as seeds 0-2 and 3-4
side by side, each group as above.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine.metrics import progress_text
from ..errors import RunFailed, UserError, WriteFailed
from .record import RunRecord
from .report import _pm, _stats
from .runs import check_writable, run_recorded
from .store import Store


def halved(groups: list[list], parts: int) -> list[list]:
    """``groups`` with the largest one halved (its first half first) until there are ``parts`` of them or
    none has two members."""
    groups = list(groups)
    while len(groups) < parts:
        largest = max(range(len(groups)), key=lambda i: len(groups[i]), default=None)
        if largest is None or len(groups[largest]) < 2:
            break
        group, half = groups[largest], (len(groups[largest]) + 1) // 2
        groups[largest:largest + 1] = [group[:half], group[half:]]
    return groups


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` parallel runs: the cores shared out, within the thread count
    this process may use (OMP_NUM_THREADS or torch.set_num_threads): a sweep told to keep to one
    thread, beside other work, must not evaluate on two cores that other work is using."""
    import torch
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()) // jobs)


def seed_processes(config, seeds: int, jobs: int | None = None) -> int:
    """How many worker processes ``lamaml run --seeds`` trains ``seeds`` seeds in: ``jobs`` where given
    (at most one per seed); else, for an MLP that trains on one thread on the CPU, one per core the process
    may use; else one: a conv net's run already trains on every core (``train_threads: auto``), and on a
    GPU the seeds' one batched computation costs less than processes sharing it."""
    if jobs is not None:
        return max(1, min(jobs, seeds))
    import torch
    on_gpu = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if on_gpu or not one_thread(config):
        return 1
    return max(1, min(seeds, threads_per_job(1)))


def one_thread(config) -> bool:
    """Whether ``config`` trains on one CPU thread: an MLP under ``train_threads`` auto or 1."""
    return config.model == "mlp" and config.train_threads in ("auto", 1)


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
                       note: Callable[[str], None] | None = None, processes: int = 1) -> list[dict[str, Any]]:
    """Run ``config`` once per seed and return each seed's metrics, recorded in ``store`` and under ``out``.

    ``show(metrics)`` is called for each seed as soon as it is done, before anything is written (with
    ``processes`` > 1: for every seed in order, once all groups are done and written); ``note(reason)``
    when the seeds run one after another instead of as one computation; ``processes``: worker
    processes, each training a group of the seeds so (``seed_processes`` says how many pay).
    """
    from ..engine.seeds import prepare_seeds, run_seeds, seed_configs
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UserError(f"--seeds {describe_seeds(seeds)}: give each seed once")
    if processes > 1:
        return _in_processes(config, seeds, processes, data_dir, download, out, store, quiet, tensorboard, show,
                             note)
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


def _in_processes(config, seeds: list[int], processes: int, data_dir, download: bool, out, store, quiet: bool,
                  tensorboard, show, note) -> list[dict[str, Any]]:
    """The seeds split into ``processes`` groups (``halved``), each group's ``run_seeds_recorded`` in a
    worker process of its own; every seed's metrics, in the order of ``seeds``. Workers are spawned, as
    a sweep's are (engines.run_local says why). A group that fails fails its own seeds; the others
    finish and are recorded, then the first error is raised."""
    from ..data import require_data, resolve_data_dir
    from .lifeline import die_with_parent
    require_data(config.benchmark, resolve_data_dir(data_dir), download)      # fetched once, here; workers never do
    if store:                     # made once, here: the workers then only add rows to it
        Store(store)
    for seed in seeds:
        if out:
            check_writable(seed_folder(out, seed))
    groups = halved([seeds], processes)
    # A run that trains on one thread keeps a lone run's threads for evaluation, whose products then
    # round as its separate run's do (their brief overlap costs less than a difference); any other
    # run gets its share of the cores, as a sweep's jobs do.
    threads = _torch_threads() if one_thread(config) else threads_per_job(len(groups))
    if note:
        note(f"{len(seeds)} seeds in {len(groups)} processes side by side: seeds "
             f"{' and '.join(describe_seeds(group) for group in groups)}")
    by_seed, errors, lost = {}, [], []
    with ProcessPoolExecutor(max_workers=len(groups), mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_seed_group, config.model_dump(), group, threads, data_dir, out, store,
                               quiet or len(group) == 1, tensorboard): group    # no progress bars side by side
                   for group in groups}
        for future in as_completed(futures):
            try:
                metrics, reason = future.result()
            except BrokenProcessPool:       # one worker killed from outside ends them all
                lost += futures[future]
                continue
            except Exception as error:      # noqa: BLE001 -- raised below, once the other groups are recorded
                errors.append(error)
                continue
            if note and reason:
                note(reason)
            by_seed.update((one["seed"], one) for one in metrics)
    for seed in seeds:          # in the order asked for, whichever group finished first
        if show and seed in by_seed:
            show(by_seed[seed])
    if errors:
        raise errors[0]
    if lost:
        raise RunFailed(f"a worker process of --seeds was killed (out of memory, or by a signal): seeds "
                        f"{describe_seeds(sorted(lost))} have no results; run them again")
    return [by_seed[seed] for seed in seeds]


def _torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def _seed_group(config_dict: dict[str, Any], seeds: list[int], threads: int, data_dir, out, store, quiet: bool,
                tensorboard) -> tuple[list[dict[str, Any]], str | None]:
    """A worker's group of seeds (``_in_processes``); its metrics and why they ran one after another, if so."""
    import torch
    from ..config import RunConfig
    torch.set_num_threads(threads)
    reasons = []
    metrics = run_seeds_recorded(RunConfig(**config_dict), seeds, data_dir=data_dir, download=False, out=out,
                                 store=store, quiet=quiet, tensorboard=tensorboard, note=reasons.append)
    return metrics, (f"seeds {describe_seeds(seeds)}: {reasons[0]}" if reasons else None)
