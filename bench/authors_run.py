"""The authors' own La-MAML-family update, trained on our MNIST benchmarks: what their code gives here.

Needs a checkout of montrealrobotics/La-MAML (see bench/compare_authors.py). Their ``model/lamaml.py``
``Net`` is imported unmodified and driven as their ``main.py`` drives it: seeds set as their
``init_seed`` (torch, numpy, random), one pass over each task in shuffled batches of 10,
``observe(x, y, t)`` per batch (their glances, reservoir and replay draws inside), accuracy on every
task's 10,000 test images after each task. Only the data are ours (the same tasks a ``lamaml run``
of that seed trains on), so the result tells whether a gap to the paper lies in our implementation
or in the authors' code on these data.

    python bench/authors_run.py --authors-dir /path/to/La-MAML \\
        --benchmark mnist-rotations --method sync-la-maml --seeds 0,1,2,3,4
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from compare_authors import authors_args, import_authors   # this folder is on sys.path

from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine.metrics import summarize


def accuracies(model, stream) -> np.ndarray:
    out = []
    with torch.no_grad():
        for t, task in enumerate(stream):
            x, y = task.test()
            out.append(100.0 * (model(x.flatten(1), t).argmax(1) == y).float().mean().item())
    return np.array(out)


def one_run(module, data_dir, benchmark: str, method: str, seed: int) -> dict:
    stream = build_benchmark(benchmark, data_dir, seed, None, False)
    config = resolve_config(benchmark, method, seed=seed)
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)    # their misc_utils.init_seed
    model = module.Net(784, 10, len(stream), authors_args(config, benchmark.replace("-", "_"), "linear"))
    baseline, matrix = accuracies(model, stream), []
    start = time.perf_counter()
    for t, task in enumerate(stream):
        x, y = task.train()
        x = x.flatten(1)
        order = torch.randperm(len(x))                                     # their DataLoader's shuffle
        for b in range(0, len(x), config.batch_size):
            rows = order[b:b + config.batch_size]
            model.observe(x[rows], y[rows], t)
        matrix.append(accuracies(model, stream))
    metrics = summarize(np.array(matrix), baseline)
    return {"seed": seed, "ra": metrics["ra"], "bti": metrics["bti"], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--benchmark", default="mnist-rotations")
    parser.add_argument("--method", default="sync-la-maml", help="la-maml, c-maml or sync-la-maml")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, _ = import_authors(args.authors_dir)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        runs.append(one_run(module, resolve_data_dir(args.data_dir), args.benchmark, args.method, seed))
        print(f"{args.benchmark} {args.method} (authors' code, our data) seed {seed}: RA {runs[-1]['ra']:.2f} "
              f"BTI {runs[-1]['bti']:.2f} ({runs[-1]['seconds']:.0f} s)", flush=True)
    ra, bti = np.array([r["ra"] for r in runs]), np.array([r["bti"] for r in runs])
    spread = lambda v: f"{v.mean():.2f} +/- {v.std(ddof=1) if len(v) > 1 else 0:.2f}"   # noqa: E731
    print(f"{args.benchmark} {args.method}, authors' code on our data, {len(runs)} seeds: "
          f"RA {spread(ra)}, BTI {spread(bti)}")


if __name__ == "__main__":
    main()
