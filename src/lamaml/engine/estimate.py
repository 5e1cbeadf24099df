"""A projected time for a run before it starts: time a few updates and one evaluation, then count.

The projection trains the run's own method on the first phase's first batches (after a warm-up, so
one-off costs such as oneDNN's kernel choice are not counted, and longer where needed until the
replay memory holds a full replay batch: MER's 25-sample draws cost what a full run's do), times the
evaluation of one task, and multiplies each by how often the full run does it. It trains a copy of
nothing: the method it builds is thrown away, so ``lamaml run --estimate`` leaves no trace.

Methods whose cost per update grows over the stream (GEM: one gradient per past task) are timed on
the first task, where they are cheapest: their projection is a lower bound, and says so.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import RunConfig
from ..durations import duration
from .loop import Phase, epoch_batches, joint_phase, learn_batch, stream_phases
from .anytime import anytime_evaluations
from .evaluate import evaluate_all
from .progress import Progress
from .run import derived_seeds, prepare
from .threads import training_threads

# Their cost per update grows with the number of tasks seen: the first task's is a lower bound.
GROWS_WITH_TASKS = {"gem": "one gradient per past task", "icarl": "distillation over more exemplar classes"}


@dataclass
class Estimate:
    setup_s: float              # reading the data, building the model and the method
    load_s: float               # preparing every phase's training samples
    train_s: float
    eval_s: float
    updates: int                # observe() calls of the full run
    ms_per_update: float
    evaluations: float          # task evaluations of the full run (one task on one split each; a subset part)
    tasks: int
    device: str
    lower_bound: str | None = None
    train_threads: int | None = None   # CPU threads the timed updates ran on (None: a GPU)

    @property
    def total_s(self) -> float:
        return self.setup_s + self.load_s + self.train_s + self.eval_s

    def as_dict(self) -> dict:
        # to the millisecond: a short run's 30 updates of 1.4 ms would round to 0.0 s at 0.1 s
        return {"projected_total_s": round(self.total_s, 3), "train_s": round(self.train_s, 3),
                "eval_s": round(self.eval_s, 3), "setup_s": round(self.setup_s + self.load_s, 3),
                "updates": self.updates, "ms_per_update": round(self.ms_per_update, 3),
                "evaluations": self.evaluations, "lower_bound": self.lower_bound,
                "train_threads": self.train_threads}

    def lines(self) -> list[str]:
        bound = "at least " if self.lower_bound else ""
        threads = f" on {self.train_threads} thread{'s' * (self.train_threads > 1)}" if self.train_threads else ""
        out = [f"projected time: {bound}{duration(self.total_s)} "
               f"(training {duration(self.train_s)}: {self.updates:,} updates x {self.ms_per_update:.2f} ms{threads}; "
               f"evaluation {duration(self.eval_s)}: {round(self.evaluations):,} task evaluations; "
               f"setup {duration(self.setup_s + self.load_s)})"]
        if self.lower_bound:
            out.append(f"  a lower bound: the cost per update grows over the stream ({self.lower_bound})")
        return out


def evaluation_count(tasks: int, evaluate: str, validation: bool) -> int:
    """How many single-task evaluations a run makes: the baseline row and one row after each phase."""
    if evaluate == "joint":     # trained on every task at once: one row, after training
        rows = tasks
    elif evaluate == "all":
        rows = tasks * tasks
    elif evaluate == "seen":
        rows = sum(min(t + 2, tasks) for t in range(tasks))
    else:       # "metrics": tasks t and t + 1 after each task but the last, every task after it
        rows = 2 * (tasks - 1) + tasks
    return (tasks + rows) * (2 if validation else 1)


def _batches_per_epoch(method, phase: Phase, n: int, batch_size: int) -> int:
    if phase.task is None and hasattr(method, "joint_batch_count"):
        return method.joint_batch_count(n, batch_size)
    return math.ceil(n / batch_size)


MAX_WARMUP = 200       # batches: a memory that fills slower than this is timed part-empty


def _replay_full(method) -> bool:
    """Whether the method's replay memory holds a full replay batch (or it has none)."""
    memory, wanted = getattr(method, "memory", None), getattr(method.params, "replay_batch_size", 0)
    return memory is None or not hasattr(memory, "size") or memory.size >= min(wanted, memory.capacity)


def _time_updates(method, phase: Phase, config: RunConfig, device, warmup: int, timed: int) -> tuple[list[float], float]:
    """Seconds per incoming batch (all its glances), for ``timed`` batches after ``warmup`` (a task too short
    for both: its last batches, warm-up included, rather than none); and the load time."""
    start = time.perf_counter()
    x, y, ids = phase.load()
    x, y = x.to(device), y.to(device)
    load_s = time.perf_counter() - start
    generator = torch.Generator().manual_seed(derived_seeds(config.seed)["order"])
    progress = Progress(np.full((1, 1), np.nan))
    times, every = [], []
    for i, rows in enumerate(epoch_batches(method, phase, ids, len(x), config.batch_size, progress, generator)):
        if len(times) >= timed:
            break
        if i == warmup and not _replay_full(method) and warmup < MAX_WARMUP:
            warmup += 1     # time updates whose replay batch is full, as in the rest of the run
        start = time.perf_counter()
        rows = rows.to(device)
        xb, yb = x[rows], y[rows]
        task = phase.task if ids is None else ids.to(device)[rows]
        if phase.prepare is not None:
            xb = phase.prepare(xb, generator)
        float(learn_batch(method, xb, yb, task, glances=config.glances, first_epoch=True))  # float(): waits for the device
        every.append(time.perf_counter() - start)
        if i >= warmup:
            times.append(every[-1])
    return times or every[-timed:], load_s


def estimate(config: RunConfig, data_dir=None, download: bool = True, warmup: int = 3,
             timed: int = 5) -> Estimate:
    """Project the full run of ``config`` from ``timed`` batches after ``warmup`` and one evaluation."""
    start = time.perf_counter()
    device, stream, method, _ = prepare(config, data_dir, download)
    setup_s = time.perf_counter() - start
    phases = joint_phase(stream) if method.joint else stream_phases(stream)
    threads = torch.get_num_threads()
    train_threads = training_threads(config.train_threads, method.model, device)
    if train_threads:
        torch.set_num_threads(train_threads)
    try:
        method.begin_task(phases[0].task)
        times, load_s = _time_updates(method, phases[0], config, device, warmup, timed)
    finally:
        torch.set_num_threads(threads)
    per_batch = statistics.median(times) if times else 0.0
    sizes = [sum(task.n_train for task in stream)] if method.joint else [task.n_train for task in stream]
    batches = sum(config.epochs * _batches_per_epoch(method, phase, n, config.batch_size)
                  for phase, n in zip(phases, sizes))
    start = time.perf_counter()
    split = "val" if stream.has_validation else "test"
    evaluate_all(method, stream, device, config.eval_batch_size, split=split, only=[0])
    per_eval = time.perf_counter() - start
    evaluations = evaluation_count(len(stream), "joint" if method.joint else config.evaluate, stream.has_validation)
    if config.eval_every:
        per_phase = [config.epochs * _batches_per_epoch(method, phase, n, config.batch_size)
                     for phase, n in zip(phases, sizes)]
        task = stream[0]
        size = len((task.val() if stream.has_validation else task.test())[1])
        share = min(1.0, config.anytime_samples / size) if config.anytime_samples else 1.0
        evaluations += anytime_evaluations(per_phase, [phase.row for phase in phases], config.eval_every,
                                           "joint" if method.joint else config.evaluate, share)
    return Estimate(setup_s=setup_s, load_s=load_s * len(phases), train_s=per_batch * batches,
                    eval_s=per_eval * evaluations, updates=batches * config.glances,
                    ms_per_update=1000 * per_batch / config.glances, evaluations=evaluations,
                    tasks=len(stream), device=str(device),
                    lower_bound=GROWS_WITH_TASKS.get(config.method), train_threads=train_threads)
