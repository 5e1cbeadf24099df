"""The CUDA path, checked in one short run: every Table 2 method's update on CUDA equals the CPU's
(float64), so do MNIST's fast paths, and each method's speed eager and with the model compiled, with
projected full runs.

    PYTHONPATH=src python bench/gpu_check.py             # all of it, sized to end within ~8 minutes on an H100/H200
    PYTHONPATH=src python bench/gpu_check.py --skip-compile          # equality and eager speed only
    PYTHONPATH=src python bench/gpu_check.py --device cpu --methods er --benchmarks cifar100   # the script, no GPU

1. Equality: for each method, two learners from the same weights and seeds, one on the CPU and one
   on CUDA, in float64, take the same 2 tasks of 2 incoming batches (2 glances each: a first sight and
   a second look; the CPU's float64 convolutions are slow), so the methods' past-task code runs too (GEM's projections, iCaRL's distillation, EWC's penalty); the
   largest difference of their weights (and learned rates) is printed against a 1e-9 tolerance.
   Every random draw of the methods comes from CPU generators, so both sides draw the same samples.
   The vision methods on CIFAR-100's shape (each run's pc-cnn), then MNIST's MLP fast paths (the
   La-MAML family's closed form, first layer factored; MER's hand-written step) and two seeds
   batched as ``lamaml run --seeds``, which Table 1 runs and a vision net never reaches.
2. Speed: bench_vision's timing (ms per update on task 1, median) eager and with ``torch.compile``
   on the model, for the vision nets, and the projected full-run time from the eager figure. Only
   first-order methods compile: ``torch.compile`` has no double backward, which the second-order
   presets (La-MAML, C-MAML, Sync La-MAML, Meta-BGD) need.
Writes a Markdown report to --out (default gpu-check.md) after every row, so a run stopped by a time
limit leaves what it measured, and prints it.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vision import SHAPES, TABLE2, settings_of, time_updates  # noqa: E402

from lamaml.config import resolve_config  # noqa: E402
from lamaml.engine import build_method  # noqa: E402
from lamaml.methods import batched  # noqa: E402
from lamaml.models import build_model  # noqa: E402

TOLERANCE = 1e-9
MNIST = "mnist-rotations"
MNIST_FAST = ["la-maml", "c-maml", "sync-la-maml", "la-er", "mer"]      # closed form, MER's step by hand
SHAPES_ALL = {**SHAPES, MNIST: ((784,), 10, 20)}


def _learner(config, device: torch.device, benchmark: str, seed: int = 0):
    shape, n_out, n_tasks = SHAPES_ALL[benchmark]
    torch.manual_seed(seed)
    model = build_model(config.model, shape, n_out, config.init).to(device)
    learner = build_method(config.method, model, config.method_params(), seed)
    if benchmark != MNIST:          # task-aware heads: task t's classes are 5t..5t+4
        heads = torch.zeros(n_tasks, n_out, dtype=torch.bool)
        for t in range(n_tasks):
            heads[t, 5 * t:5 * t + 5] = True
        learner.use_task_heads(heads.to(device))
    return learner


def _state(learner) -> list[torch.Tensor]:
    tensors = [p.detach().cpu() for p in learner.model.parameters()]
    rates = getattr(learner, "state", None)
    if rates is not None and hasattr(rates, "rates"):
        tensors.append(rates.rates.detach().cpu())
    return tensors


def _stream(config, benchmark: str, tasks: int, batches: int, seed: int = 1) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """``tasks`` x ``batches`` incoming batches (task, x, y), the same for every device."""
    shape = SHAPES_ALL[benchmark][0]
    g = torch.Generator().manual_seed(seed)
    labels = lambda task: (torch.randint(0, 10, (config.batch_size,), generator=g) if benchmark == MNIST  # noqa: E731
                           else 5 * task + torch.randint(0, 5, (config.batch_size,), generator=g))
    return [(task, torch.randn(config.batch_size, *shape, generator=g), labels(task))
            for task in range(tasks) for _ in range(batches)]


def _train(learner, config, data, device: str, glances: int = 2) -> None:
    """The run loop's calls, in its order: begin_task, the glances of each batch (at most ``glances``),
    end_batch, end_task."""
    if learner.joint:
        learner.begin_task(None)
    for i, (task, x, y) in enumerate(data):
        x, y = x.to(device), y.to(device)
        if not learner.joint and (i == 0 or data[i - 1][0] != task):
            learner.begin_task(task)
        ids = torch.full_like(y, task) if learner.joint else task
        for glance in range(min(config.glances, glances)):
            learner.observe(x, y, ids, first_sight=glance == 0)
        learner.end_batch(x, y, ids, first_sight=True)
        if not learner.joint and (i + 1 == len(data) or data[i + 1][0] != task):
            learner.end_task(task)


def _float64(check):
    def wrapped(*args, **kwargs):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_default_dtype(previous)
    return wrapped


@_float64
def equality(benchmark: str, method: str, devices: tuple[str, str] = ("cpu", "cuda"), tasks: int = 2,
             batches: int = 2) -> float:
    """Largest |CPU - device| over weights and rates after ``tasks`` x ``batches`` incoming batches, in float64."""
    config = resolve_config(benchmark, method, {}, setting="single")
    data = _stream(config, benchmark, tasks, batches)
    sides = [_learner(config, torch.device(name), benchmark) for name in devices]
    for name, learner in zip(devices, sides):
        _train(learner, config, data, name)
    return max(float((a - b).abs().max()) for a, b in zip(_state(sides[0]), _state(sides[1])))


@_float64
def batched_equality(devices: tuple[str, str] = ("cpu", "cuda"), seeds: int = 2, batches: int = 3) -> float:
    """Largest |CPU - device| over every seed's weights and rates, La-MAML on MNIST's MLP, ``seeds`` seeds
    as one batched computation on each device (``lamaml run --seeds``)."""
    config = resolve_config(MNIST, "la-maml", {})
    data = [_stream(config, MNIST, 1, batches, seed=1 + k) for k in range(seeds)]
    states = []
    for name in devices:
        learners = [_learner(config, torch.device(name), MNIST, seed=k) for k in range(seeds)]
        group, reason = batched(learners)
        if reason:
            raise RuntimeError(f"not batched: {reason}")
        for learner in learners:
            learner.begin_task(0)
        for b in range(batches):
            xs = [stream[b][1].to(name) for stream in data]
            ys = [stream[b][2].to(name) for stream in data]
            for glance in range(config.glances):
                group.observe(xs, ys, 0, first_sight=glance == 0)
            group.end_batch(xs, ys, 0, first_sight=True)
        states.append([t for learner in learners for t in _state(learner)])
    return max(float((a - b).abs().max()) for a, b in zip(*states))


class Report:
    """The Markdown report, written whole after every row."""

    def __init__(self, path: str, title: str):
        self.path, self.lines = Path(path), [title, ""]

    def add(self, *lines: str, echo: str = "") -> None:
        self.lines += lines
        self.path.write_text("\n".join(self.lines) + "\n")
        if echo is not None and lines and lines[-1]:
            print(lines[-1], echo, flush=True)


def _equality_row(report: Report, label: str, check) -> None:
    try:
        gap = check()
        report.add(f"| {label} | {gap:.1e} | {'yes' if gap <= TOLERANCE else '**no**'} |")
    except Exception as error:  # one broken method must not hide the others
        traceback.print_exc()
        report.add(f"| {label} | error: {error.__class__.__name__}: {str(error).splitlines()[0]} | **no** |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="all", help="Table 2 methods (comma-separated; default all)")
    parser.add_argument("--benchmarks", default=",".join(SHAPES), help="the speed section's vision benchmarks")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--compile-methods", default="er,la-er",
                        help="methods timed with torch.compile (a minute each; first-order ones only, see above)")
    parser.add_argument("--device", default="cuda", help="the device checked against the CPU (cpu: a dry run of "
                        "this script where there is no GPU; its differences are then 0)")
    parser.add_argument("--out", default="gpu-check.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    methods = TABLE2 if args.methods == "all" else args.methods.split(",")
    name = torch.cuda.get_device_name() if device.type == "cuda" else args.device
    report = Report(args.out, f"# GPU check: {name} (torch {torch.__version__})")
    devices = ("cpu", args.device)
    report.add(f"## {args.device} vs CPU, float64, 2 tasks x 2 incoming batches x 2 glances (single-pass presets)", "",
               "| benchmark, method | largest difference | within 1e-9 |", "|---|---|---|", echo=None)
    for method in methods:
        _equality_row(report, f"cifar100, {method}", lambda: equality("cifar100", method, devices))
    for method in (m for m in MNIST_FAST if args.methods == "all" or m in methods):
        _equality_row(report, f"{MNIST}, {method} (fast path)", lambda: equality(MNIST, method, devices))
    if args.methods == "all" or "la-maml" in methods:
        _equality_row(report, f"{MNIST}, la-maml, 2 seeds batched", lambda: batched_equality(devices))
    report.add("", f"## Speed on {args.device} (ms per update, median of 5 after warm-up)", "",
               "| benchmark | method | setting | eager ms | compiled ms | projected full run (eager) |",
               "|---|---|---|---|---|---|", echo=None)
    for benchmark in args.benchmarks.split(","):
        for method in methods:
            for setting in settings_of(benchmark, method):
                start = time.perf_counter()
                row = time_updates(benchmark, method, setting, device, 5, 4, {})
                compiled = "-"
                if not args.skip_compile and method in args.compile_methods.split(",") and setting == "single":
                    try:
                        compiled = f"{time_updates(benchmark, method, setting, device, 5, 4, {}, compile_model=True)['ms_per_update']:.1f}"
                    except Exception as error:
                        compiled = f"failed: {error.__class__.__name__}"
                report.add(f"| {benchmark} | {method} | {setting} | {row['ms_per_update']:.1f} | {compiled} "
                           f"| {row['projected_h']:.2f} h |", echo=f"({time.perf_counter() - start:.0f} s)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
