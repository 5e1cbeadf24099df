"""Speed of La-MAML on the MNIST protocol: ms per meta-update and a full run, on this machine.

Both backends are measured in the same invocation: the closed form (the default for the MLP, its
first layer factored) and autograd (``fast_path=false``), so the ratio compares like with like.
``--paths stepped`` adds the closed form stepping every weight (``factored=false``).

    python bench/bench_mnist.py                                       # both paths, both measurements
    python bench/bench_mnist.py --updates 300 --skip-full             # only the micro-benchmark
    python bench/bench_mnist.py --paths fast                          # one path
    python bench/bench_mnist.py --paths fast,stepped --skip-full      # factored against stepped closed form
    python bench/bench_mnist.py --paths fast --skip-full --flops      # and the arithmetic rate it reaches

Prints a Markdown table (paste it into BENCHMARKS.md) and, with --json FILE, writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_vision import peak_gflops
from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import build_method, derived_seeds, run
from lamaml.engine.threads import training_threads
from lamaml.models import build_model


def time_meta_updates(config, data_dir, n_updates: int, warmup: int = 50, count_flops: bool = False) -> dict:
    """Median and mean wall time of single ``observe`` calls on the benchmark's first tasks; ``count_flops``:
    also the matmul GFLOP of one more meta-update, counted after the timing (``torch.utils.flop_counter``)."""
    stream = build_benchmark(config.benchmark, resolve_data_dir(data_dir), config.seed, download=False)
    seeds = derived_seeds(config.seed)
    torch.manual_seed(seeds["model"])
    method = build_method(config.method, build_model("mlp", stream.input_shape, stream.n_outputs),
                          config.method_params(), seeds["method"])
    x, y = stream[0].train()
    threads = torch.get_num_threads()
    torch.set_num_threads(training_threads(config.train_threads, method.model, torch.device("cpu")))  # as `lamaml run`
    times, step = [], 0
    while len(times) < n_updates:
        b = (step // config.glances) % (len(x) // config.batch_size)
        xb, yb = x[b * config.batch_size:(b + 1) * config.batch_size], y[b * config.batch_size:(b + 1) * config.batch_size]
        start = time.perf_counter()
        method.observe(xb, yb, 0, first_sight=step % config.glances == 0)
        if step % config.glances == config.glances - 1:
            method.end_batch(xb, yb, 0, first_sight=True)
        elapsed = time.perf_counter() - start
        if step >= warmup:
            times.append(elapsed)
        step += 1
    gflop = None
    if count_flops:
        counter = FlopCounterMode(display=False)
        with counter:
            method.observe(x[:config.batch_size], y[:config.batch_size], 0, first_sight=False)
        gflop = counter.get_total_flops() / 1e9
    torch.set_num_threads(threads)
    return {"median_ms": 1000 * statistics.median(times), "mean_ms": 1000 * statistics.fmean(times),
            "updates_timed": len(times), "gflop_per_update": gflop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="mnist-rotations")
    parser.add_argument("--method", default="la-maml")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--updates", type=int, default=1000, help="meta-updates to time")
    parser.add_argument("--paths", default="fast,reference", help="fast, stepped, reference (comma-separated)")
    parser.add_argument("--skip-full", action="store_true", help="skip the full run")
    parser.add_argument("--flops", action="store_true",
                        help="also each meta-update's matmul GFLOP, the rate it reaches, and this CPU's best "
                             "square-product rate on one thread and on all (bench_vision.py's yardstick)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()

    results = {}
    for path in args.paths.split(","):
        if path not in ("fast", "stepped", "reference"):
            parser.error(f"--paths: {path!r} is not one of fast, stepped, reference")
        config = resolve_config(args.benchmark, args.method, {"fast_path": path != "reference",
                                                              "factored": path != "stepped"})
        micro = time_meta_updates(config, args.data_dir, args.updates, count_flops=args.flops)
        full = None if args.skip_full else run(config, data_dir=args.data_dir, download=False)
        results[path] = {"micro": micro, "full": full}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
              f"training on 1 thread (an MLP's `auto`), evaluation on " \
              f"{torch.get_num_threads()}"

    paths = list(results)
    print(f"{args.method} on {args.benchmark} (commit {commit}; {machine})\n")
    print("| measurement | " + " | ".join(f"{p} path" for p in paths) + " |\n|---|" + "---|" * len(paths))
    row = lambda name, fmt: print(f"| {name} | " + " | ".join(fmt(results[p]) for p in paths) + " |")  # noqa: E731
    row(f"ms per meta-update, median of {args.updates}", lambda r: f"{r['micro']['median_ms']:.2f}")
    row("ms per meta-update, mean", lambda r: f"{r['micro']['mean_ms']:.2f}")
    if args.flops:
        row("MFLOP per meta-update (matmuls)", lambda r: f"{1000 * r['micro']['gflop_per_update']:.1f}")
        row("GFLOP/s at the median", lambda r: f"{r['micro']['gflop_per_update'] / r['micro']['median_ms'] * 1000:.1f}")
    if not args.skip_full:
        row("full run: training", lambda r: f"{r['full']['train_time_s']:.1f} s ({r['full']['ms_per_update']:.2f} "
                                            f"ms/update over {r['full']['updates']})")
        row("full run: evaluation", lambda r: f"{r['full']['eval_time_s']:.1f} s")
        row("full run: wall clock", lambda r: f"{r['full']['wall_time_s']:.1f} s")
        row("full run: peak memory", lambda r: f"{r['full']['peak_rss_mb']:.0f} MB")
        row("full run: RA / BTI", lambda r: f"{r['full']['ra']:.2f} / {r['full']['bti']:.2f}")
    if args.flops:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        one = peak_gflops(torch.device("cpu"))
        torch.set_num_threads(threads)
        print(f"\nthis CPU's best square-product rate: {one:.0f} GFLOP/s on one thread, "
              f"{peak_gflops(torch.device('cpu')):.0f} on {threads}")
    if {"fast", "stepped"} <= set(paths):
        print(f"\nstepped / fast: {results['stepped']['micro']['median_ms'] / results['fast']['micro']['median_ms']:.2f}x "
              f"per meta-update")
    if {"fast", "reference"} <= set(paths):
        ratio = results["reference"]["micro"]["median_ms"] / results["fast"]["micro"]["median_ms"]
        line = f"\nreference / fast: {ratio:.2f}x per meta-update"
        if not args.skip_full:
            line += f", {results['reference']['full']['wall_time_s'] / results['fast']['full']['wall_time_s']:.2f}x " \
                    f"full-run wall clock"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "commit": commit, "machine": machine}, indent=2))


if __name__ == "__main__":
    main()
