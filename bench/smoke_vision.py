"""Every Table 2 method for a few tasks of a vision benchmark, each task cut to a few images.

A smoke run of the whole Table 2 surface on real data: presets, task-aware heads, the pc-cnn net,
augmentation, validation and test matrices. Prints a Markdown table of RA and times.

    python bench/smoke_vision.py                                  # Tiny ImageNet, 2 tasks x 50
    python bench/smoke_vision.py --benchmark cifar100 --samples-per-task 100 --device cuda
"""
from __future__ import annotations

import argparse
import subprocess
import time

from bench_vision import TABLE2   # this folder is on sys.path when a script in it runs

from lamaml.config import resolve_config
from lamaml.engine import run
from lamaml.config.schema import preset_note

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="tinyimagenet")
    parser.add_argument("--methods", default=",".join(TABLE2))
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--samples-per-task", type=int, default=50)
    parser.add_argument("--setting", default="single", help="single or multi; a method the paper ran in the "
                        "other setting only (IID: multi, MER: single) runs in that one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    rows = []
    for method in args.methods.split(","):
        overrides = {"samples_per_task": args.samples_per_task, "device": args.device}
        if method == "iid":     # a smoke run: one pass over the cut union per epoch, not 5000 batches
            overrides["iterations"] = None
        setting = args.setting
        if preset_note(args.benchmark, method, setting):   # the paper never ran it in this setting: its own
            setting = "multi" if setting == "single" else "single"
        config = resolve_config(args.benchmark, method, overrides, tasks=args.tasks, setting=setting)
        start = time.perf_counter()
        metrics = run(config, data_dir=args.data_dir, download=False)
        rows.append((method, setting, metrics, time.perf_counter() - start))
        print(f"  {method} ({setting}): RA {metrics['ra']:.1f}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\n{args.benchmark}, {args.tasks} tasks x {args.samples_per_task} training images, device "
          f"{args.device}, commit {commit}; RA on the validation split, chance {100 / 5:.0f}%\n")
    print("| method | setting | RA | test RA | training | evaluation | wall clock |")
    print("|---|---|---|---|---|---|---|")
    for method, setting, m, wall in rows:
        test_ra = m.get("test", {}).get("ra")
        print(f"| {method} | {setting} | {m['ra']:.1f} | {test_ra if test_ra is None else round(test_ra, 1)} "
              f"| {m['train_time_s']:.1f} s | {m['eval_time_s']:.1f} s | {wall:.1f} s |")


if __name__ == "__main__":
    main()
