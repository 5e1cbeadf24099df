"""What a second training thread pays on this CPU, for the work a vision update is made of: the pc-cnn's
forward and backward passes, a large matrix product (the floor's yardstick) and a weight-sized
element-wise pass (the La-MAML family's inner steps make many). Each is timed three ways:

- ``one``: one thread, the jobs one after another (5c7a803's vision runs, the issue's "before");
- ``intra``: all threads on each job in turn (``train_threads: auto``, how a run trains today);
- ``side``: one job per thread at once, each on one thread (``concurrent.ThreadSplit``: Meta-BGD's
  draws, VR-MCL's look-aheads), the most that independent pieces of an update can gain.

    python bench/cpu_scaling.py                         # batch 10 (the Table 2 presets'), 2 threads
    python bench/cpu_scaling.py --batch 20 --rounds 9   # the La-MAML family's meta-batch
    python bench/cpu_scaling.py --only cifar100 --brief # one line: the machine's state now (ab_vision.sh prints
                                                        # it before each round)

A method whose update is all convolutions gains at most the ``intra`` or ``side`` figure from the
second thread; prints a Markdown table (``--json FILE`` writes the numbers).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from typing import Callable

import torch
import torch.nn.functional as F

from lamaml.engine.threads import AUTO_CAP
from lamaml.hardware import cpu_info, tune_allocator
from lamaml.methods.concurrent import ThreadSplit
from lamaml.models.convnet import ConvNet

MODES = ("one", "intra", "side")
ELEMENTS = 1_419_940        # CIFAR-100's pc-cnn: one element-wise pass over its weights


def pc_cnn_pass(shape: tuple[int, int, int], n_out: int, batch: int) -> Callable[[], Callable[[], None]]:
    """A job maker: each job has its own net and images; a call is one forward and backward pass."""
    def make() -> Callable[[], None]:
        net = ConvNet(shape, n_out)
        x, y = torch.randn(batch, *shape), torch.randint(0, n_out, (batch,))
        return lambda: torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
    return make


def matmul(side: int) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        a, b = torch.randn(side, side), torch.randn(side, side)
        return lambda: a @ b
    return make


def elementwise(n: int) -> Callable[[], Callable[[], None]]:
    """``w - r * g`` on fresh outputs, as an inner step forms its fast weights."""
    def make() -> Callable[[], None]:
        w, r, g = torch.randn(n), torch.randn(n), torch.randn(n)
        return lambda: w - r * g
    return make


def workloads(batch: int) -> dict[str, Callable[[], Callable[[], None]]]:
    return {f"cifar100 pc-cnn, batch {batch}, forward + backward": pc_cnn_pass((3, 32, 32), 100, batch),
            f"tinyimagenet pc-cnn, batch {batch}, forward + backward": pc_cnn_pass((3, 64, 64), 200, batch),
            "matrix product 1024 x 1024": matmul(1024),
            f"element-wise w - r * g, {ELEMENTS:,} numbers": elementwise(ELEMENTS)}


def timed(mode: str, jobs: list[Callable[[], None]], threads: int, passes: int, seen: list | None = None) -> float:
    """Seconds for every job to make ``passes`` calls, in ``mode``; ``seen`` collects (thread, intra-op
    threads) of each job as it ran."""
    def run(job: Callable[[], None]) -> None:
        if seen is not None:
            seen.append((threading.get_ident(), torch.get_num_threads()))
        for _ in range(passes):
            job()
    start = time.perf_counter()
    try:
        if mode == "side":
            with ThreadSplit(len(jobs), len(jobs)) as split:
                for job in jobs:
                    split.submit(lambda job=job: run(job))
        else:
            torch.set_num_threads(1 if mode == "one" else threads)
            for job in jobs:
                run(job)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def measure(make: Callable[[], Callable[[], None]], threads: int, passes: int, rounds: int) -> dict[str, float]:
    """ms per call in each mode (median over ``rounds``; each round times the modes in turn, so all
    see the machine's state of that moment), with ``threads`` jobs, after one warm-up round."""
    jobs = [make() for _ in range(threads)]
    spent: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(rounds + 1):
        for mode in MODES:
            elapsed = timed(mode, jobs, threads, passes)
            if round_:
                spent[mode].append(1000 * elapsed / (threads * passes))
    return {mode: statistics.median(times) for mode, times in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10, help="images per pc-cnn pass")
    parser.add_argument("--threads", type=int, default=min(torch.get_num_threads(), AUTO_CAP),
                        help="threads, and jobs (default: as train_threads=auto)")
    parser.add_argument("--passes", type=int, default=10, help="calls per job in each timing")
    parser.add_argument("--rounds", type=int, default=5, help="timings per mode (median)")
    parser.add_argument("--only", default=None, help="only the workloads whose name holds this (e.g. cifar100)")
    parser.add_argument("--brief", action="store_true", help="one line per workload, no table")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads < 2:
        parser.error(f"--threads {args.threads}: needs 2 or more (one thread has nothing to compare)")
    tune_allocator()
    torch.manual_seed(0)
    chosen = {name: make for name, make in workloads(args.batch).items() if args.only is None or args.only in name}
    if not chosen:
        parser.error(f"--only {args.only}: no workload's name holds it; they are: {'; '.join(workloads(args.batch))}")
    rows = []
    for name, make in chosen.items():
        ms = measure(make, args.threads, args.passes, args.rounds)
        rows.append({"workload": name, **{f"{mode}_ms": ms[mode] for mode in MODES},
                     **{f"{mode}_gain": ms["one"] / ms[mode] for mode in MODES[1:]}})
        if args.brief:
            r = rows[-1]
            print(f"{args.threads} threads now, {name}: one thread {r['one_ms']:.2f} ms, all threads "
                  f"{r['intra_gain']:.2f}x, side by side {r['side_gain']:.2f}x", flush=True)
        else:
            print(f"  {name}: " + ", ".join(f"{mode} {ms[mode]:.3f} ms" for mode in MODES), flush=True)
    if args.brief:
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\n{cpu_info()['model']}, {args.threads} threads (commit {commit}, torch {torch.__version__}); ms per call, "
          f"median of {args.rounds} rounds of {args.threads} jobs x {args.passes} calls; gain: one thread's ms / this\n")
    print("| workload | one thread | all threads on each job (gain) | one job per thread, side by side (gain) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['one_ms']:.3f} | {r['intra_ms']:.3f} ({r['intra_gain']:.2f}x) | "
              f"{r['side_ms']:.3f} ({r['side_gain']:.2f}x) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"commit": commit, "cpu": cpu_info()["model"], "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
