"""The CUDA path, checked in one short run: every Table 2 method's update on CUDA equals the CPU's
(float64), and each method's speed eager and with the model compiled, with projected full runs.

    python bench/gpu_check.py                      # all of it, sized to end within ~8 minutes on an H100/H200
    python bench/gpu_check.py --skip-compile       # equality and eager speed only

1. Equality: for each method, two learners from the same weights and seeds, one on the CPU and one
   on CUDA, in float64, take the same 3 incoming batches (glances as the preset); the largest
   difference of their weights (and learned rates) is printed against a 1e-9 tolerance. Every
   random draw of the methods comes from CPU generators, so both sides draw the same samples.
2. Speed: bench_vision's timing (ms per update on task 1, median) eager and with ``torch.compile``
   on the model, for the vision nets, and the projected full-run time from the eager figure.
Writes a Markdown report to --out (default gpu-check.md) and prints it.
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
from lamaml.models import build_model  # noqa: E402

TOLERANCE = 1e-9


def _learner(config, device: torch.device, benchmark: str):
    shape, n_out, n_tasks = SHAPES[benchmark]
    torch.manual_seed(0)
    model = build_model(config.model, shape, n_out, config.init).to(device)
    learner = build_method(config.method, model, config.method_params(), 0)
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


def equality(benchmark: str, method: str, batches: int = 3, devices: tuple[str, str] = ("cpu", "cuda")) -> float:
    """Largest |CPU - CUDA| over weights and rates after ``batches`` incoming batches, in float64."""
    config = resolve_config(benchmark, method, {}, setting="single")
    shape, _, n_tasks = SHAPES[benchmark]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        sides = [(name, _learner(config, torch.device(name), benchmark)) for name in devices]
        g = torch.Generator().manual_seed(1)
        data = [(torch.randn(config.batch_size, *shape, generator=g),
                 torch.randint(0, 5, (config.batch_size,), generator=g)) for _ in range(batches)]
        for name, learner in sides:
            learner.begin_task(None if learner.joint else 0)
            for x, y in data:
                x, y = x.to(name), y.to(name)
                task = torch.zeros_like(y) if learner.joint else 0
                for glance in range(config.glances):
                    learner.observe(x, y, task, first_sight=glance == 0)
                learner.end_batch(x, y, task, first_sight=True)
        return max(float((a - b).abs().max()) for a, b in zip(_state(sides[0][1]), _state(sides[1][1])))
    finally:
        torch.set_default_dtype(previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="all")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--compile-methods", default="la-maml,c-maml,er",
                        help="methods timed with torch.compile (compiling takes a minute each)")
    parser.add_argument("--out", default="gpu-check.md")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    methods = TABLE2 if args.methods == "all" else args.methods.split(",")
    lines = [f"# GPU check: {torch.cuda.get_device_name()} (torch {torch.__version__})", "",
             "## CUDA vs CPU, float64, 3 incoming batches (CIFAR-100 shape, single-pass preset)", "",
             "| method | largest difference | within 1e-9 |", "|---|---|---|"]
    for method in methods:
        try:
            gap = equality("cifar100", method)
            lines.append(f"| {method} | {gap:.1e} | {'yes' if gap <= TOLERANCE else '**no**'} |")
        except Exception as error:  # one broken method must not hide the others
            lines.append(f"| {method} | error: {error.__class__.__name__}: {error} | **no** |")
            traceback.print_exc()
        print(lines[-1], flush=True)
    lines += ["", "## Speed on CUDA (ms per update, median of 5 after warm-up)", "",
              "| benchmark | method | setting | eager ms | compiled ms | projected full run (eager) |",
              "|---|---|---|---|---|---|"]
    device = torch.device("cuda")
    for benchmark in SHAPES:
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
                lines.append(f"| {benchmark} | {method} | {setting} | {row['ms_per_update']:.1f} | {compiled} "
                             f"| {row['projected_h']:.2f} h |")
                print(lines[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
