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
import copy
import json
import math
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lamaml.config import preset, resolve_config
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch
from lamaml.engine.run import resolve_device
from lamaml.engine.threads import AUTO_CAP
from lamaml.errors import UserError
from lamaml.hardware import tune_allocator
from lamaml.models import build_model

TABLE2 = ["iid", "er", "icarl", "gem", "a-gem", "mer", "meta-bgd", "c-maml", "la-er", "sync-la-maml", "la-maml"]
SHAPES = {"cifar100": ((3, 32, 32), 100, 20), "tinyimagenet": ((3, 64, 64), 200, 40)}   # input, outputs, tasks
TRAIN_PER_TASK, EVAL_PER_TASK = 2250, 500        # 250 validation + 250 test images per task


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_updates(benchmark: str, method: str, setting: str, device: torch.device, updates: int, warmup: int,
                 overrides: dict, compile_model: bool = False, count_flops: bool = False, at_task: int = 1) -> dict:
    """ms per ``observe`` call on task ``at_task`` (1 by default, so memories and earlier-task terms are
    populated; a later task for methods whose work grows with the tasks seen: GEM, A-GEM, iCaRL), and eval speed;
    ``compile_model``: the net wrapped in ``torch.compile`` (bench/gpu_check.py); ``count_flops``: also
    the matmul and conv GFLOP of the timed updates, their mean (``torch.utils.flop_counter``, on a twin
    learner that repeats them from the same state: the counter's overhead stays out of the timing, and
    a method whose work grows with its memory, as MER's, is counted on the updates that were timed)."""
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
    if not 1 <= at_task < n_tasks:
        raise UserError(f"--at-task {at_task}: {benchmark} has tasks 1 to {n_tasks - 1} after its first")
    # the tasks before, each ended: enough of each that every replay draw is full size (MER: 25 examples
    # of one) and every task's memory is filled (GEM: 10 per task)
    fill = math.ceil(max(config.params.get("replay_batch_size") or 0, config.params.get("n_memories") or 0) / batch)
    for task in range(1 if learner.joint else at_task):
        learner.begin_task(None if learner.joint else task)
        for _ in range(max(warmup // 2, 1, fill)):
            x, y = incoming(task)
            learn_batch(learner, x, y, task_of() if learner.joint else task, glances=1, first_epoch=True)
        if not learner.joint:
            learner.end_task(task)
    if not learner.joint:
        learner.begin_task(at_task)
    times, steps = [], []
    before = copy.deepcopy(learner.state_dict()) if count_flops else None
    for step in range(warmup // 2 + updates):
        x, y = incoming(at_task)
        _sync(device)
        start = time.perf_counter()
        task = task_of() if learner.joint else at_task
        steps.append((x, y, task))
        learner.observe(x, y, task, first_sight=step % config.glances == 0)
        if step % config.glances == config.glances - 1:    # the batch's last glance: memories take it in
            learner.end_batch(x, y, task, first_sight=True)
        _sync(device)
        if step >= warmup // 2:
            times.append(time.perf_counter() - start)
    flops = None
    if count_flops:   # the timed updates again, counted, on a twin restored to the learner's state before them
        torch.manual_seed(0)
        twin = build_method(method, build_model(config.model, shape, n_out, config.init).to(device),
                            config.method_params(), 0)
        twin.use_task_heads(heads)
        twin.load_state_dict(before)
        def replay(step, x, y, task):
            twin.observe(x, y, task, first_sight=step % config.glances == 0)
            if step % config.glances == config.glances - 1:
                twin.end_batch(x, y, task, first_sight=True)
        for step, batch_of_step in enumerate(steps[:warmup // 2]):
            replay(step, *batch_of_step)
        counter = FlopCounterMode(display=False)       # (entering it again would restart its count)
        with counter:
            for step, batch_of_step in enumerate(steps[warmup // 2:], start=warmup // 2):
                replay(step, *batch_of_step)
        flops = counter.get_total_flops() / updates
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
            "eval_s_per_task": eval_s_per_task, "projected_h": projected / 3600, "gflop_per_update":
            None if flops is None else flops / 1e9}


def _best_seconds(work, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``work`` (after one untimed)."""
    work()
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        work()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(device: torch.device, sizes=(256, 512, 1024, 2048), repeats: int = 7) -> float:
    """This device's best matrix-product rate on the current threads: the fastest of ``repeats`` square
    products of each size, the best size's. The yardstick of every FLOP floor: an update whose products
    and convolutions all ran at it would take FLOPs / rate."""
    rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        rate = max(rate, 2 * n ** 3 / _best_seconds(lambda: a @ b, device, repeats) / 1e9)
    return rate


def conv_gflops(device: torch.device, repeats: int = 7) -> float:
    """The rate of the pc-cnn's largest conv (20 Tiny ImageNet images, 160 -> 160 channels on 32x32 maps,
    3x3, stride 2) in channels-last layout, the best of ``repeats``: oneDNN's convs can beat the matrix
    product's rate (on AVX-512 CPUs), so this says how far below the floor a conv-bound update could go."""
    x = torch.randn(20, 160, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(160, 160, 3, 3, device=device)
    seconds = _best_seconds(lambda: torch.nn.functional.conv2d(x, w, stride=2, padding=1), device, repeats)
    return 2 * 20 * 16 * 16 * 160 * 160 * 9 / seconds / 1e9


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
    parser.add_argument("--threads", default=None,
                        help="torch threads: a number, or auto as runs train the conv nets (train_threads=auto: "
                             f"all cores, at most {AUTO_CAP}); default: all cores")
    parser.add_argument("--floor", action="store_true",
                        help="also each update's matmul/conv GFLOP and its floor: GFLOP / the device's large-matmul rate")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run setting or hyperparameter for every cell, as lamaml run --set "
                             "(e.g. native_convs=false: MER's steps on oneDNN)")
    parser.add_argument("--onednn", choices=["on", "off"], default="on",
                        help="off: PyTorch's own CPU convolutions for everything (how MER's steps run)")
    parser.add_argument("--allocator", choices=["tuned", "default"], default="tuned",
                        help="tuned: glibc's allocator held as `lamaml` holds it (hardware.tune_allocator); "
                             "default: glibc's own settings")
    parser.add_argument("--at-task", type=int, default=1,
                        help="time the updates of this task, after the tasks before it (default 1: after one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.allocator == "tuned":
        tune_allocator()
    if any("=" not in pair for pair in args.set):
        parser.error(f"--set {next(p for p in args.set if '=' not in p)}: expected KEY=VALUE")
    sets = dict(pair.split("=", 1) for pair in args.set)
    torch._C._set_mkldnn_enabled(args.onednn == "on")
    if args.threads == "auto":      # every Table 2 net is a conv net: what train_threads=auto gives it
        torch.set_num_threads(min(torch.get_num_threads(), AUTO_CAP))
    elif args.threads:
        torch.set_num_threads(int(args.threads))
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
                    row = time_updates(benchmark, method, setting, device, args.updates, args.warmup,
                                       {**sets, **overrides},
                                       count_flops=args.floor, at_task=args.at_task)
                    rows.append(row)
                    print(f"  {benchmark} {method} {setting} {'2nd' if row['second_order'] else '1st'} order: "
                          f"{row['ms_per_update']:.1f} ms/update", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    peak = peak_gflops(device) if args.floor else None
    conv_rate = conv_gflops(device) if args.floor else None
    for r in rows:
        r["floor_ms"] = None if peak is None else 1000 * r["gflop_per_update"] / peak
    print(f"\nTable 2 methods on {where} (commit {commit}, torch {torch.__version__}); "
          f"median of {args.updates} updates" + (f"; floor: GFLOP at {peak:.0f} GFLOP/s, the best "
                                                   f"square matrix product here; the largest conv, channels-last, runs at "
                                                   f"{conv_rate:.0f}" if peak else "") + "\n")
    floor_head = " GFLOP / update | floor ms | x floor |" if peak else ""
    print("| benchmark | method | setting | order | batch x glances x epochs | ms / update | images / s "
          "| updates in a full run | eval s / task | projected full run |" + floor_head)
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|---|---|" * bool(peak))
    for r in rows:
        order = "-" if r["second_order"] is None else ("second" if r["second_order"] else "first")
        print(f"| {r['benchmark']} | {r['method']} | {r['setting']} | {order} | {r['batch']} x {r['glances']} x "
              f"{r['epochs']} | {r['ms_per_update']:.1f} | {r['images_per_s']:.0f} | {r['updates']:,} "
              f"| {r['eval_s_per_task']:.2f} | {r['projected_h']:.1f} h |" +
              (f" {r['gflop_per_update']:.2f} | {r['floor_ms']:.1f} | {r['ms_per_update'] / r['floor_ms']:.2f} |"
               if peak else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "commit": commit, "device": where,
                                                   "peak_gflops": peak, "conv_gflops": conv_rate}, indent=2))


if __name__ == "__main__":
    main()
