"""A sweep's projected duration, before it starts: from the store's history where it has one, else timed.

Runs that differ only by seed take the same time, so each group of pending runs is projected once:
from the mean wall time of the same group's finished runs in the store that trained on as many
threads as the pending run will (what this machine measured; ``train_threads`` is not part of a
run's identity, and a conv net on two threads is about 1.6x faster than on one), else by
``engine.estimate`` on one of its configs (a few timed updates and one evaluation). The total on J
workers is at least the sum over J and at least the longest run.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import torch

from ..durations import duration
from ..engine.estimate import estimate
from ..engine.threads import auto_threads
from .store import Store, config_hash


def _without_seed(config: dict[str, Any]) -> str:
    return config_hash({**config, "seed": 0})


def threads_of(config: dict[str, Any], available: int | None = None) -> int:
    """The thread count a run of ``config`` trains (or trained) on: its number, or what ``"auto"`` gives
    it on ``available`` threads (a job's share; the process's by default). A run recorded before the
    setting existed trained on one."""
    setting = config.get("train_threads", 1)
    if setting != "auto":
        return int(setting)
    return auto_threads(config.get("model") == "pc-cnn", 1, available or torch.get_num_threads())


def history(store: Store) -> dict[tuple[str, int], float]:
    """Mean wall time of finished runs, by configuration without its seed and the threads it trained on."""
    times = defaultdict(list)
    for row in store.query(["status=done"]):
        metrics = json.loads(row.get("metrics") or "{}")
        if metrics.get("batched_seeds"):    # a share of a batched computation's time, not one run's
            continue
        if metrics.get("resumed"):      # its wall time is the last process's; training and evaluation add up
            seconds = (metrics.get("train_time_s") or 0.0) + (metrics.get("eval_time_s") or 0.0)
        else:
            seconds = row.get("wall_time_s") or 0.0
        if seconds:
            config = json.loads(row["config"])
            times[_without_seed(config), threads_of(config)].append(float(seconds))
    return {key: sum(values) / len(values) for key, values in times.items()}


def project(groups: list[list[dict[str, Any]]], store: Store, data_dir: str | None,
            jobs: int, threads: int | None = None) -> tuple[float, list[str], list[float]]:
    """(projected seconds for the pending runs on ``jobs`` workers, notes on runs whose time is a lower
    bound or that resume from a checkpoint, each run's projected seconds in order: a resumed run's, the
    share of its batches still to train). ``groups``: the jobs a worker takes whole, one run each, or
    the seeds of one configuration (``--batch-seeds``), projected as their seeds one after another: an
    upper bound where they train as one batched computation, which also starts them over. ``threads``:
    each job's thread count, which the timed updates take too (a conv net trains on all of them)."""
    from ..config import RunConfig
    from .engines import checkpoint_share
    known, per_run, per_group, notes = history(store), [], [], []
    measured: dict[str, float] = {}
    for group in groups:
        group_seconds = 0.0
        for config in group:
            key = _without_seed(config), threads_of(config, threads)
            if key not in known and key not in measured:
                projected = _estimate_on(threads, RunConfig(**config), data_dir)
                measured[key] = projected.total_s
                if projected.lower_bound:
                    notes.append(f"{config['benchmark']} {config['method']}: at least ({projected.lower_bound})")
            seconds = known.get(key, measured.get(key))
            share = checkpoint_share(store.path, config) if len(group) == 1 else None
            if share:
                seconds *= 1 - share
                notes.append(f"{config['benchmark']} {config['method']} seed {config.get('seed', 0)}: resumes "
                             f"from its checkpoint, {share:.0%} of its training done")
            per_run.append(seconds)
            group_seconds += seconds
        per_group.append(group_seconds)
    if any(len(group) > 1 for group in groups):
        notes.append("--batch-seeds: each configuration's seeds projected one after another in one worker, "
                     "an upper bound where they train as one batched computation")
    workers = max(1, min(jobs, len(groups)))
    total = max(sum(per_group) / workers, max(per_group, default=0.0))
    return total, notes, per_run


def _estimate_on(threads: int | None, config, data_dir: str | None):
    """``engine.estimate`` with the process's thread count set to what each job will have."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return estimate(config, data_dir, download=False, warmup=2, timed=3)
    finally:
        torch.set_num_threads(before)


def print_projection(groups: list[list[dict[str, Any]]], store: Store, data_dir: str | None,
                     jobs: int, threads: int | None = None) -> dict[str, float]:
    """Print the projected total; return each pending run's projected seconds by config hash (the
    sweep's progress lines weigh the time left with them)."""
    total, notes, per_run = project(groups, store, data_dir, jobs, threads)
    runs = [config for group in groups for config in group]
    print(f"sweep: projected {duration(total)} for {len(runs)} run(s) on {jobs} job(s)", file=sys.stderr)
    for note in notes:
        print(f"  {note}", file=sys.stderr)
    return {config_hash(config): seconds for config, seconds in zip(runs, per_run)}
