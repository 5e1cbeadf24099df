"""Several seeds of one configuration trained in lock step as one computation (``lamaml run --seeds``).

Each seed is built exactly as its own run builds it (``run.prepare``: its stream, its initial
weights, its method with its generator) and keeps its own batch-order generator; what the seeds
share is each meta-update, which the method layer's ``batched`` computes for all of them at once.
The loop is ``loop.train``'s, phase by phase and batch by batch, with every seed at the same batch:
per seed the same random draws in the same order, the loss checked every batch, the weights every
task, each seed evaluated as the config says. Where the methods cannot be batched (``batched``
says why), ``prepare_seeds`` returns the reason and the caller runs the seeds one after another.

Times: the seeds train together, so each seed reports its share (1/S) of the training time and of
the wall clock, which add up to the run's, and its own evaluation time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import RunConfig
from ..data import TaskStream
from ..errors import UserError
from ..methods import Method, batched
from .evaluate import evaluate_all
from .loop import StreamResult, _sync, check_loss, check_parameters, stream_phases
from .run import derived_seeds, prepare, report, with_threads
from .threads import training_threads


@dataclass
class SeedRuns:
    """What ``prepare_seeds`` built: one config, stream and method per seed, and their shared step."""

    configs: list[RunConfig]
    streams: list[TaskStream]
    methods: list[Method]
    group: Any                      # observe(xs, ys, task, first_sight) -> losses (S,); end_batch(...)
    device: torch.device
    wall_start: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def seed_configs(config: RunConfig, seeds: list[int]) -> list[RunConfig]:
    """``config`` once per seed, each exactly as ``lamaml run --seed k`` resolves it."""
    return [RunConfig(**{**config.model_dump(), "seed": seed}) for seed in seeds]


def prepare_seeds(configs: list[RunConfig], data_dir: str | Path | None = None,
                  download: bool = True) -> tuple[SeedRuns | None, str | None]:
    """Every seed's run built as ``run.prepare`` builds it, and their batched step; or None and the
    reason they cannot train as one computation."""
    wall_start = time.perf_counter()
    if len({config.model_copy(update={"seed": 0}).model_dump_json() for config in configs}) > 1:
        return None, "the seeds' configurations differ beyond the seed"
    built = [prepare(config, data_dir, download) for config in configs]
    if any(plugins for *_, plugins in built):
        return None, "analyses and anytime evaluation (eval_every) measure each run on its own"
    devices, streams, methods = ([item[i] for item in built] for i in range(3))
    if len({tuple(task.n_train for task in stream) for stream in streams}) > 1:
        return None, "the seeds' tasks differ in size"
    group, reason = batched(methods)
    if reason:
        return None, reason
    configs = [with_threads(config, method, devices[0], len(configs)) for config, method in zip(configs, methods)]
    return SeedRuns(configs, streams, methods, group, devices[0], wall_start), None


@dataclass
class _Seed:
    """One seed's measurements, as ``loop.Progress`` keeps a run's."""

    matrix: np.ndarray
    baseline: np.ndarray
    test_matrix: np.ndarray | None = None
    test_baseline: np.ndarray | None = None
    eval_time: float = 0.0
    task_losses: list[float] = field(default_factory=list)


def _evaluate(seed: _Seed, method, stream: TaskStream, config: RunConfig, device, row: int | None) -> None:
    """Fill the accuracy row after task ``row`` (None: the baseline), as ``loop.train`` does."""
    split, T = "val" if stream.has_validation else "test", len(stream)
    start = time.perf_counter()
    if row is None:
        seed.baseline = evaluate_all(method, stream, device, config.eval_batch_size, split=split)
        if stream.has_validation:
            seed.test_baseline = evaluate_all(method, stream, device, config.eval_batch_size)
            seed.test_matrix = np.full((T, T), np.nan)
    else:
        upto = row + 2 if config.evaluate == "seen" else None
        only = [row, row + 1] if config.evaluate == "metrics" and row < T - 1 else None
        seed.matrix[row] = evaluate_all(method, stream, device, config.eval_batch_size, upto, split, only)
        if seed.test_matrix is not None:
            seed.test_matrix[row] = evaluate_all(method, stream, device, config.eval_batch_size, upto, only=only)
    seed.eval_time += time.perf_counter() - start


def train_seeds(runs: SeedRuns, on_task: Callable[[int, list[np.ndarray]], None] | None = None) -> list[StreamResult]:
    """Train every seed, task by task, in lock step; ``on_task(t, rows)`` after each task's evaluation
    (each seed's accuracy row). Returns each seed's ``StreamResult``."""
    config, device, group = runs.configs[0], runs.device, runs.group
    S, T = len(runs.methods), len(runs.streams[0])
    stream, method = runs.streams[0], runs.methods[0]
    if not stream.task_ids_at_test and getattr(method, "needs_task_id_at_test", False):
        raise UserError(f"{getattr(method, 'name', 'this method')} predicts with the task id; "
                        f"a {stream.scenario} stream gives none at test time")
    orders = [torch.Generator().manual_seed(derived_seeds(c.seed)["order"]) for c in runs.configs]
    phases = [stream_phases(stream) for stream in runs.streams]
    seeds = [_Seed(np.full((T, T), np.nan), np.zeros(T)) for _ in range(S)]
    for seed, method, stream in zip(seeds, runs.methods, runs.streams):
        _evaluate(seed, method, stream, config, device, None)
    train_time, after_task, updates = 0.0, [], 0
    eval_threads = torch.get_num_threads()
    train_threads = training_threads(config.train_threads, runs.methods[0].model, device, S)
    try:
        for t in range(T):
            torch.set_num_threads(train_threads or eval_threads)
            now = [phase[t] for phase in phases]
            for method, phase in zip(runs.methods, now):
                method.begin_task(phase.task)
            clock = time.perf_counter()
            data = [phase.load() for phase in now]
            xs, ys = [x.to(device) for x, _, _ in data], [y.to(device) for _, y, _ in data]
            n, task = len(xs[0]), now[0].task
            loss_sums = np.zeros(S)
            for epoch in range(config.epochs):
                epoch_orders = [torch.randperm(n, generator=order) for order in orders]
                batches = math.ceil(n / config.batch_size)
                for b in range(batches):
                    rows = [order[b * config.batch_size:(b + 1) * config.batch_size].to(device)
                            for order in epoch_orders]
                    xb, yb = [x[r] for x, r in zip(xs, rows)], [y[r] for y, r in zip(ys, rows)]
                    if now[0].prepare is not None:     # each seed's pipeline draws from its own order generator
                        xb = [phase.prepare(x, order) for phase, x, order in zip(now, xb, orders)]
                    for glance in range(config.glances):
                        losses = group.observe(xb, yb, task, first_sight=epoch == 0 and glance == 0)
                    group.end_batch(xb, yb, task, first_sight=epoch == 0)
                    values = losses.tolist()
                    for value, phase in zip(values, now):
                        check_loss(value, phase, epoch, b)
                    loss_sums += values          # float64, in the order loop.train adds them
                    updates += config.glances
            for method, phase in zip(runs.methods, now):
                method.end_task(phase.task)
            _sync(device)
            train_time += time.perf_counter() - clock
            after_task.append(train_time)
            torch.set_num_threads(eval_threads)
            for seed, method, stream, loss_sum in zip(seeds, runs.methods, runs.streams, loss_sums.tolist()):
                check_parameters(method, f"during task {t}")
                seed.task_losses.append(loss_sum / max(config.epochs * math.ceil(n / config.batch_size), 1))
                _evaluate(seed, method, stream, config, device, t)
            if on_task is not None:
                on_task(t, [seed.matrix[t] for seed in seeds])
    finally:
        torch.set_num_threads(eval_threads)
    heads = "single" if getattr(runs.methods[0], "heads", None) is None else "task-aware"
    return [StreamResult(seed.matrix, seed.baseline, train_time / S, seed.eval_time, updates, seed.task_losses,
                         [v / S for v in after_task], {}, seed.test_matrix, seed.test_baseline, heads=heads,
                         scenario=stream.scenario)
            for seed, stream in zip(seeds, runs.streams)]


def run_seeds(runs: SeedRuns, on_task: Callable[[int, list[np.ndarray]], None] | None = None) -> list[dict[str, Any]]:
    """Train the prepared seeds and return each one's ``metrics.json`` content, with the keys of a run's."""
    results = train_seeds(runs, on_task)
    wall_share = (time.perf_counter() - runs.wall_start) / len(results)
    metrics = []
    for result, config, stream in zip(results, runs.configs, runs.streams):
        one = report(result, config, stream, runs.device, runs.wall_start, runs.started_at)
        one["wall_time_s"] = round(wall_share, 3)
        one["resumed"] = False
        one["train_threads_used"] = [config.train_threads]
        metrics.append(one)
    return metrics
