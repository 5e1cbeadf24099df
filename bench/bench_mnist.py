"""Speed of La-MAML on the MNIST protocol: ms per meta-update and a full run, on this machine.

    python bench/bench_mnist.py --data-dir ../shared/data            # both measurements
    python bench/bench_mnist.py --updates 300 --skip-full             # only the micro-benchmark

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

from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import build_method, derived_seeds, run
from lamaml.models import build_model


def time_meta_updates(config, data_dir, n_updates: int, warmup: int = 50) -> dict:
    """Median and mean wall time of single ``observe`` calls on the benchmark's first tasks."""
    stream = build_benchmark(config.benchmark, resolve_data_dir(data_dir), config.seed, download=False)
    seeds = derived_seeds(config.seed)
    torch.manual_seed(seeds["model"])
    method = build_method(config.method, build_model("mlp", stream.input_shape, stream.n_outputs),
                          config.method_params(), seeds["method"])
    x, y = stream[0].train()
    times, step = [], 0
    while len(times) < n_updates:
        b = (step // config.glances) % (len(x) // config.batch_size)
        xb, yb = x[b * config.batch_size:(b + 1) * config.batch_size], y[b * config.batch_size:(b + 1) * config.batch_size]
        start = time.perf_counter()
        method.observe(xb, yb, 0, epoch=0, glance=step % config.glances)
        elapsed = time.perf_counter() - start
        if step >= warmup:
            times.append(elapsed)
        step += 1
    return {"median_ms": 1000 * statistics.median(times), "mean_ms": 1000 * statistics.fmean(times),
            "updates_timed": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="mnist-rotations")
    parser.add_argument("--method", default="la-maml")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--updates", type=int, default=1000, help="meta-updates to time")
    parser.add_argument("--skip-full", action="store_true", help="skip the full run")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()

    config = resolve_config(args.benchmark, args.method)
    micro = time_meta_updates(config, args.data_dir, args.updates)
    full = None if args.skip_full else run(config, data_dir=args.data_dir, download=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
              f"{torch.get_num_threads()} threads"

    print(f"{args.method} on {args.benchmark} (commit {commit}; {machine})\n")
    print("| measurement | value |\n|---|---|")
    print(f"| ms per meta-update, median of {micro['updates_timed']} | {micro['median_ms']:.2f} |")
    print(f"| ms per meta-update, mean | {micro['mean_ms']:.2f} |")
    if full:
        print(f"| full run: training | {full['train_time_s']:.1f} s ({full['ms_per_update']:.2f} ms/update "
              f"over {full['updates']}) |")
        print(f"| full run: evaluation | {full['eval_time_s']:.1f} s |")
        print(f"| full run: wall clock | {full['wall_time_s']:.1f} s |")
        print(f"| full run: peak memory | {full['peak_rss_mb']:.0f} MB |")
        print(f"| full run: RA / BTI | {full['ra']:.2f} / {full['bti']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"micro": micro, "full": full, "commit": commit,
                                               "machine": machine}, indent=2))


if __name__ == "__main__":
    main()
