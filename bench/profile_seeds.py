"""Where a batched meta-update of five seeds goes (`lamaml run --seeds 0-4`, La-MAML, MNIST Rotations).

    python bench/profile_seeds.py --data-dir DATA                 # ms per batched meta-update and its parts
    python bench/profile_seeds.py --data-dir DATA --ops 15        # and torch.profiler's top operators
    python bench/profile_seeds.py --data-dir DATA --ink           # and how many pixels ten incoming images fill

Times `--updates` batched meta-updates (5 glances at each of 30 batches by default) of task 0 after 30
warm-up batches, with `time.perf_counter` around the parts: the stacked closed form (`backend`), the
update (`_update`), the seeds' meta-batches. Runs against whatever `lamaml` is on the path, so one
command times two trees (PYTHONPATH=TREE/src).
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch

from lamaml.config import resolve_config
from lamaml.engine.loop import stream_phases
from lamaml.engine.seeds import prepare_seeds, seed_configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30, help="batches timed (5 glances each)")
    parser.add_argument("--ops", type=int, default=0, help="also print torch.profiler's top N operators")
    parser.add_argument("--ink", action="store_true", help="also the pixels ten incoming images fill")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = resolve_config("mnist-rotations", "la-maml", {}, seed=0)
    runs, why = prepare_seeds(seed_configs(config, list(range(args.seeds))), args.data_dir, False)
    if runs is None:
        raise SystemExit(f"not batched: {why}")
    group, phases = runs.group, [stream_phases(stream)[0] for stream in runs.streams]
    for method, phase in zip(runs.methods, phases):
        method.begin_task(phase.task)
    data = [phase.load() for phase in phases]
    size = config.batch_size

    def batches(first: int, count: int):
        for b in range(first, first + count):
            yield [x[b * size:(b + 1) * size] for x, _, _ in data], [y[b * size:(b + 1) * size] for _, y, _ in data]

    def learn(first: int, count: int) -> int:
        n = 0
        for xb, yb in batches(first, count):
            for glance in range(config.glances):
                group.observe(xb, yb, 0, first_sight=glance == 0)
                n += 1
            group.end_batch(xb, yb, 0, first_sight=True)
        return n

    learn(0, 30)                                                   # fills the memories
    spent = collections.Counter()

    def timed(owner, name: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            out = inner(*a, **k)
            spent[name] += time.perf_counter() - start
            return out
        setattr(owner, name, wrapper)

    timed(group, "backend")
    timed(group, "_update")
    for method in runs.methods:
        timed(method, "meta_batch")
    start = time.perf_counter()
    n = learn(30, args.batches)
    total = time.perf_counter() - start
    parts = ", ".join(f"{name} {1000 * seconds / n:.3f}" for name, seconds in spent.items())
    print(f"{args.seeds} seeds, {args.threads} threads: {1000 * total / n:.2f} ms per batched meta-update "
          f"(of which, ms: {parts}), {n} updates")
    if args.ops:
        from torch.profiler import profile
        with profile() as prof:
            n = learn(30 + args.batches, 10)
        print(f"torch.profiler over {n} updates:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    if args.ink:
        x = data[0][0]
        g = torch.Generator().manual_seed(0)
        filled = [int((x[torch.randperm(len(x), generator=g)[:size]] != 0).any(0).sum()) for _ in range(200)]
        print(f"pixels any of {size} incoming images fills: median {statistics.median(filled)}, "
              f"range {min(filled)}-{max(filled)} of {x.shape[1]}; zeros {100 * float((x == 0).float().mean()):.0f} %")


if __name__ == "__main__":
    main()
