"""Speed of the Table 2 methods on the vision nets, and the projected time of every Table 2 run.

Each (benchmark, method, setting) is timed on random images of the benchmark's shape (speed does not
depend on pixel values, so CIFAR-100 needs no data files), with the paper's preset, task-aware heads
and the pc-cnn net, on the chosen device. From ms per update the projection multiplies by the
number of updates of the full protocol (tasks x 2250 images / batch x glances x epochs) and adds the
evaluation passes it makes (each task's 250 validation and 250 test images after every task).

    python bench/bench_vision.py                                  # La-MAML, both nets, both settings
    python bench/bench_vision.py --methods all --updates 3        # every Table 2 method
    python bench/bench_vision.py --device cuda --order both       # GPU, first and second order

Prints a Markdown table (paste it into BENCHMARKS.md); --json FILE writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from lamaml.config import preset, resolve_config
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch
from lamaml.engine.run import resolve_device
from lamaml.errors import UserError
from lamaml.models import build_model

TABLE2 = ["iid", "er", "icarl", "gem", "a-gem", "mer", "meta-bgd", "c-maml", "la-er", "sync-la-maml", "la-maml"]
SHAPES = {"cifar100": ((3, 32, 32), 100, 20), "tinyimagenet": ((3, 64, 64), 200, 40)}   # input, outputs, tasks
TRAIN_PER_TASK, EVAL_PER_TASK = 2250, 500        # 250 validation + 250 test images per task


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_updates(benchmark: str, method: str, setting: str, device: torch.device, updates: int, warmup: int,
                 overrides: dict, compile_model: bool = False) -> dict:
    """ms per ``observe`` call on task 1 (so memories and earlier-task terms are populated), and eval speed;
    ``compile_model``: the net wrapped in ``torch.compile`` (bench/gpu_check.py)."""
    config = resolve_config(benchmark, method, overrides, setting=setting)
    shape, n_out, n_tasks = SHAPES[benchmark]
    torch.manual_seed(0)
    model = build_model(config.model, shape, n_out, config.init).to(device)
    if compile_model:
        model = torch.compile(model)
    learner = build_method(method, model, config.method_params(), 0)
    heads = torch.zeros(n_tasks, n_out, dtype=torch.bool)
    for t in range(n_tasks):
        heads[t, 5 * t:5 * t + 5] = True
    learner.use_task_heads(heads)
    g = torch.Generator().manual_seed(0)
    batch = config.batch_size

    def incoming(task):
        x = torch.randn(batch, *shape, generator=g).to(device)
        y = (5 * task + torch.randint(0, 5, (batch,), generator=g)).to(device)
        return x, y
    if learner.joint:   # IID: batches mix tasks
        task_of = lambda: torch.randint(0, n_tasks, (batch,), generator=g).to(device)  # noqa: E731
    learner.begin_task(None if learner.joint else 0)
    for _ in range(max(warmup // 2, 1)):                 # task 0, then its end: memories filled
        x, y = incoming(0)
        learn_batch(learner, x, y, task_of() if learner.joint else 0, glances=1, first_epoch=True)
    if not learner.joint:
        learner.end_task(0)
        learner.begin_task(1)
    times = []
    for step in range(warmup // 2 + updates):
        x, y = incoming(1)
        _sync(device)
        start = time.perf_counter()
        task = task_of() if learner.joint else 1
        learner.observe(x, y, task, first_sight=step % config.glances == 0)
        if step % config.glances == config.glances - 1:    # the batch's last glance: memories take it in
            learner.end_batch(x, y, task, first_sight=True)
        _sync(device)
        if step >= warmup // 2:
            times.append(time.perf_counter() - start)
    eval_x = torch.randn(EVAL_PER_TASK, *shape, generator=g).to(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        learner.predict(eval_x, 1).argmax(1)
    _sync(device)
    eval_s_per_task = (time.perf_counter() - start) / 3
    ms = 1000 * statistics.median(times)
    n_updates = full_run_updates(config, n_tasks)
    evaluations = n_tasks if learner.joint else n_tasks * (n_tasks + 1) // 2 + n_tasks   # evaluate=seen-like
    projected = n_updates * ms / 1000 + evaluations * eval_s_per_task
    return {"benchmark": benchmark, "method": method, "setting": setting, "second_order":
            config.params.get("second_order"), "batch": batch, "glances": config.glances, "epochs": config.epochs,
            "ms_per_update": ms, "images_per_s": 1000 * batch / ms, "updates": n_updates,
            "eval_s_per_task": eval_s_per_task, "projected_h": projected / 3600}


def full_run_updates(config, n_tasks: int) -> int:
    if config.method == "iid":      # every task's data at once: `iterations` batches an epoch (5000), or one pass
        return config.epochs * (config.params.get("iterations")
                                or math.ceil(n_tasks * TRAIN_PER_TASK / config.batch_size))
    return n_tasks * config.epochs * math.ceil(TRAIN_PER_TASK / config.batch_size) * config.glances


def settings_of(benchmark: str, method: str) -> list[str]:
    found = []
    for setting in ("single", "multi"):
        try:
            preset(benchmark, method, setting)
            found.append(setting)
        except UserError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="cifar100,tinyimagenet")
    parser.add_argument("--methods", default="la-maml", help="comma-separated, or 'all' (the Table 2 methods)")
    parser.add_argument("--settings", default="single,multi")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--updates", type=int, default=5, help="updates timed per cell (median)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--order", default="preset", choices=["preset", "first", "both"],
                        help="La-MAML family: the preset's order, first order, or both")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    methods = TABLE2 if args.methods == "all" else args.methods.split(",")
    rows = []
    for benchmark in args.benchmarks.split(","):
        for method in methods:
            for setting in [s for s in settings_of(benchmark, method) if s in args.settings.split(",")]:
                orders = [{}]
                second = preset(benchmark, method, setting).get("second_order")
                if second and args.order != "preset":
                    orders = [{"second_order": False}] + ([{}] if args.order == "both" else [])
                for overrides in orders:
                    row = time_updates(benchmark, method, setting, device, args.updates, args.warmup, overrides)
                    rows.append(row)
                    print(f"  {benchmark} {method} {setting} {'2nd' if row['second_order'] else '1st'} order: "
                          f"{row['ms_per_update']:.1f} ms/update", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"\nTable 2 methods on {where} (commit {commit}, torch {torch.__version__}); "
          f"median of {args.updates} updates\n")
    print("| benchmark | method | setting | order | batch x glances x epochs | ms / update | images / s "
          "| updates in a full run | eval s / task | projected full run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        order = "-" if r["second_order"] is None else ("second" if r["second_order"] else "first")
        print(f"| {r['benchmark']} | {r['method']} | {r['setting']} | {order} | {r['batch']} x {r['glances']} x "
              f"{r['epochs']} | {r['ms_per_update']:.1f} | {r['images_per_s']:.0f} | {r['updates']:,} "
              f"| {r['eval_s_per_task']:.2f} | {r['projected_h']:.1f} h |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "commit": commit, "device": where}, indent=2))


if __name__ == "__main__":
    main()
