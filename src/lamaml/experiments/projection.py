"""A sweep's projected duration, before it starts: from the store's history where it has one, else timed.

Runs that differ only by seed take the same time, so each group of pending runs is projected once:
from the mean wall time of the same group's finished runs in the store (what this machine measured),
else by ``engine.estimate`` on one of its configs (a few timed updates and one evaluation). The
total on J workers is at least the sum over J and at least the longest run.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from ..durations import duration
from ..engine.estimate import estimate
from .store import Store, config_hash


def _without_seed(config: dict[str, Any]) -> str:
    return config_hash({**config, "seed": 0})


def history(store: Store) -> dict[str, float]:
    """Mean wall time of finished runs, by configuration without its seed."""
    times = defaultdict(list)
    for row in store.query(["status=done"]):
        metrics = json.loads(row.get("metrics") or "{}")
        if metrics.get("resumed"):      # its wall time is the last process's; training and evaluation add up
            seconds = (metrics.get("train_time_s") or 0.0) + (metrics.get("eval_time_s") or 0.0)
        else:
            seconds = row.get("wall_time_s") or 0.0
        if seconds:
            times[_without_seed(json.loads(row["config"]))].append(float(seconds))
    return {key: sum(values) / len(values) for key, values in times.items()}


def project(pending: list[dict[str, Any]], store: Store, data_dir: str | None,
            jobs: int) -> tuple[float, list[str], list[float]]:
    """(projected seconds for ``pending`` on ``jobs`` workers, notes on runs whose time is a lower bound or
    that resume from a checkpoint, each pending run's projected seconds: a resumed run's, the share of its
    batches still to train)."""
    from ..config import RunConfig
    from .engines import checkpoint_share
    known, per_run, notes = history(store), [], []
    measured: dict[str, float] = {}
    for config in pending:
        key = _without_seed(config)
        if key not in known and key not in measured:
            projected = estimate(RunConfig(**config), data_dir, download=False, warmup=2, timed=3)
            measured[key] = projected.total_s
            if projected.lower_bound:
                notes.append(f"{config['benchmark']} {config['method']}: at least ({projected.lower_bound})")
        seconds = known.get(key, measured.get(key))
        share = checkpoint_share(store.path, config)
        if share:
            seconds *= 1 - share
            notes.append(f"{config['benchmark']} {config['method']} seed {config.get('seed', 0)}: resumes from "
                         f"its checkpoint, {share:.0%} of its training done")
        per_run.append(seconds)
    total = max(sum(per_run) / jobs, max(per_run, default=0.0))
    return total, notes, per_run


def print_projection(pending: list[dict[str, Any]], store: Store, data_dir: str | None,
                     jobs: int) -> dict[str, float]:
    """Print the projected total; return each pending run's projected seconds by config hash (the
    sweep's progress lines weigh the time left with them)."""
    total, notes, per_run = project(pending, store, data_dir, jobs)
    print(f"sweep: projected {duration(total)} for {len(pending)} run(s) on {jobs} job(s)", file=sys.stderr)
    for note in notes:
        print(f"  {note}", file=sys.stderr)
    return {config_hash(config): seconds for config, seconds in zip(pending, per_run)}
