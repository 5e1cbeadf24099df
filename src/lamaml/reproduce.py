"""``lamaml reproduce table1``: every cell of the paper's MNIST table, over seeds, beside the paper.

Each (benchmark, method, seed) run writes ``OUT/runs/<benchmark>/<method>/seed<k>/metrics.json``
atomically; a cell whose file exists is skipped, so a rerun after a crash resumes. The table is
rebuilt from those files at the end (and by ``--table-only``), so its numbers come only from runs.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TABLE1_BENCHMARKS = ["mnist-rotations", "mnist-permutations", "mnist-many-permutations"]
TABLE1_METHODS = ["online", "ewc", "gem", "mer", "c-maml", "sync-la-maml", "la-maml"]


@lru_cache(maxsize=None)
def paper_table1() -> dict[str, dict[str, dict[str, list[float]]]]:
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1.yaml").read_text())


def reproduced(mean: float, paper_mean: float, paper_std: float) -> bool:
    """The rule of reference-results.md: within max(1.5, 2 paper stds) of the paper, either side."""
    return abs(mean - paper_mean) <= max(1.5, 2 * paper_std)


def run_path(out: Path, benchmark: str, method: str, seed: int) -> Path:
    return out / "runs" / benchmark / method / f"seed{seed}" / "metrics.json"


def _run_one(job: dict[str, Any]) -> str:
    """Worker: one run, one thread (several workers share the cores), result written atomically."""
    import torch
    torch.set_num_threads(job.pop("threads"))
    from .config import resolve_config
    from .engine import run, write_json_atomic
    target = Path(job.pop("target"))
    config = resolve_config(job["benchmark"], job["method"], job["overrides"], seed=job["seed"], tasks=job["tasks"])
    metrics = run(config, data_dir=job["data_dir"], download=False)
    write_json_atomic(target, metrics)
    return f"{job['benchmark']} {job['method']} seed {job['seed']}: RA {metrics['ra']:.2f}, " \
           f"BTI {metrics['bti']:.2f}, {metrics['wall_time_s']:.0f} s"


def run_table1(out: Path, seeds: int, jobs: int, data_dir: str | None, tasks: int | None = None,
               overrides: dict[str, str] | None = None, benchmarks=None, methods=None) -> list[str]:
    pending = []
    for benchmark in benchmarks or TABLE1_BENCHMARKS:
        for method in methods or TABLE1_METHODS:
            for seed in range(seeds):
                target = run_path(out, benchmark, method, seed)
                if not target.exists():
                    pending.append({"benchmark": benchmark, "method": method, "seed": seed, "tasks": tasks,
                                    "overrides": {"evaluate": "seen", **(overrides or {})}, "data_dir": data_dir,
                                    "target": str(target), "threads": max(1, (os.cpu_count() or 1) // jobs)})
    done = []
    print(f"table1: {len(pending)} runs to do ({seeds} seeds; finished runs are kept)", file=sys.stderr)
    # Slowest cells first, so the pool does not end waiting on one long run.
    pending.sort(key=lambda j: (j["benchmark"] != "mnist-many-permutations", j["method"] != "mer"))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_one, job) for job in pending]
        for future in as_completed(futures):
            line = future.result()
            done.append(line)
            print(f"  [{len(done)}/{len(pending)}] {line}", file=sys.stderr)
    return done


def collect(out: Path, seeds: int, benchmarks=None, methods=None) -> dict[tuple[str, str], list[dict]]:
    cells = {}
    for benchmark in benchmarks or TABLE1_BENCHMARKS:
        for method in methods or TABLE1_METHODS:
            runs = [json.loads(p.read_text()) for seed in range(seeds)
                    if (p := run_path(out, benchmark, method, seed)).exists()]
            cells[(benchmark, method)] = runs
    return cells


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def table1_markdown(cells: dict, seeds: int, command: str) -> str:
    paper = paper_table1()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Table 1 (MNIST, single pass): lamaml vs the paper",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}`",
        f"at commit {commit or 'unknown'} on {platform.machine()}, {os.cpu_count()} CPU cores.",
        "Ours: mean +/- sample std over seeds; paper: mean +/- std (reference-results.md).",
        "Reproduced (yes) when our mean is within max(1.5, 2 x paper std) of the paper's, either side.",
        "Time: mean training time per run (evaluation excluded), and its ratio to La-MAML's.",
        "Runs evaluate, after task t, tasks 0..t+1 only (`evaluate=seen`): every metric here reads",
        "only those entries, and it halves the evaluation time of the 100-task benchmark.",
        "",
        "| benchmark | method | seeds | RA (ours) | RA (paper) | RA reproduced | BTI (ours) | BTI (paper) "
        "| BTI reproduced | train time / run | x La-MAML |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (benchmark, method), runs in cells.items():
        p = paper.get(benchmark, {}).get(method)
        if not runs:
            lines.append(f"| {benchmark} | {method} | 0/{seeds} | not run | | | | | | | |")
            continue
        ra, bti = _mean_std([r["ra"] for r in runs]), _mean_std([r["bti"] for r in runs])
        train = float(np.mean([r["train_time_s"] for r in runs]))
        lamaml_runs = cells.get((benchmark, "la-maml")) or []
        ratio = train / np.mean([r["train_time_s"] for r in lamaml_runs]) if lamaml_runs else float("nan")
        marks = ["yes" if reproduced(ours[0], *p[key]) else "**no**" for ours, key in ((ra, "ra"), (bti, "bti"))] \
            if p else ["n/a", "n/a"]
        paper_ra = f"{p['ra'][0]:.2f} +/- {p['ra'][1]:.2f}" if p else "NOT FOUND"
        paper_bti = f"{p['bti'][0]:.2f} +/- {p['bti'][1]:.2f}" if p else "NOT FOUND"
        lines.append(f"| {benchmark} | {method} | {len(runs)}/{seeds} | {ra[0]:.2f} +/- {ra[1]:.2f} | {paper_ra} "
                     f"| {marks[0]} | {bti[0]:.2f} +/- {bti[1]:.2f} | {paper_bti} | {marks[1]} | {train:.0f} s "
                     f"| {ratio:.1f} |")
    return "\n".join(lines) + "\n"
