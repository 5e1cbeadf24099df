"""``lamaml reproduce table1``: every cell of the paper's MNIST table, over seeds, beside the paper.

A thin preset of ``lamaml sweep`` + report: the 21 cells x seeds are one sweep recorded in the
results store ``OUT/results.sqlite``; runs already done there are skipped, so a rerun after a crash
resumes. The table is rebuilt from the store at the end (and by ``--table-only``), so its numbers
come only from recorded runs; beside it go the runs themselves, one CSV row each, and under it every
comparison the paper states in words on these benchmarks (config/paper/table1_claims.yaml), judged
on the paper's table and on ours (claims.py).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..sweep import SweepSpec, done_metrics, run_sweep
from .claims import claims_section
from .paper import TABLE1_BENCHMARKS, TABLE1_METHODS, mean_std, paper_table1
from .tables import (RUN_COLUMNS, STORE_NAME, commits_line, generated_lines, reproduced, run_rows, runs_csv,  # noqa: F401
                     runs_csv_path, threads_mark, write_tables)


@lru_cache(maxsize=None)
def table1_notes() -> dict[str, dict[str, str]]:
    """Why a cell may miss the paper: benchmark -> method -> explanation, shown under the table for the
    cells that are not reproduced (config/paper/table1_notes.yaml)."""
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1_notes.yaml").read_text()) or {}


# What each benchmark evaluates after every task: Rotations keeps RA after each task (the appendix F
# figure reads it), the others only the entries their metrics read (3T evaluations, not T^2).
TABLE1_EVALUATE = {"mnist-rotations": "seen", "mnist-permutations": "metrics", "mnist-many-permutations": "metrics"}


def table1_spec(seeds: int, tasks: int | None = None, overrides: dict[str, Any] | None = None,
                benchmarks=None, methods=None):
    """Table 1 as a sweep: every (benchmark, method) at its preset, seeds 0..N-1 (one spec per benchmark)."""
    return [SweepSpec(benchmarks=[benchmark], methods=methods or TABLE1_METHODS, seeds=list(range(seeds)),
                      set={"evaluate": TABLE1_EVALUATE[benchmark], **(overrides or {})}, tasks=tasks)
            for benchmark in benchmarks or TABLE1_BENCHMARKS]


def _slowest_first(config: dict[str, Any]) -> tuple[bool, bool]:
    # MER and the 100-task benchmark are the longest runs; started first, the pool ends together.
    return config["benchmark"] != "mnist-many-permutations", config["method"] != "mer"


def run_table1(out: Path, spec, jobs: int, data_dir: str | None) -> list[dict[str, Any]]:
    return run_sweep(spec, out / STORE_NAME, jobs, data_dir, order=_slowest_first, project=True)


def collect(out: Path, spec) -> dict[tuple[str, str], list[dict]]:
    """Metrics of the finished runs of each cell, read from the store by configuration hash."""
    cells: dict[tuple[str, str], list[dict]] = {(b, m): [] for one in spec for b in one.benchmarks
                                                for m in one.methods}
    for metrics in done_metrics(out / STORE_NAME, spec):
        cells[(metrics["benchmark"], metrics["method"])].append(metrics)
    return cells


def table1_markdown(cells: dict, seeds: int, command: str, rebuilt: bool = False,
                    runs_csv: str | None = None) -> str:
    """The table, its claims section and the notes on missed cells; ``runs_csv`` names the file of its
    runs written beside it (see write_table1)."""
    paper = paper_table1()
    lines = [
        "# Table 1 (MNIST, single pass): lamaml vs the paper",
        "",
        *generated_lines(command, rebuilt),
        commits_line(cells),
        *([f"The runs behind it, one row each: `{runs_csv}`, beside this file."] if runs_csv else []),
        "Ours: mean +/- sample std over seeds; paper: mean +/- std (arXiv 2102.05824, Table 3).",
        "Reproduced (yes) when our mean is within max(1.5, 2 x paper std) of the paper's, either side.",
        "Time: mean training time per run (evaluation excluded; one thread per run, `--jobs` runs at once), and its ratio to La-MAML's.",
        "After each task, Rotations runs evaluate tasks 0..t+1 (`evaluate=seen`), the others only the",
        "task just learned and the next, and all tasks at the end (`evaluate=metrics`): every metric",
        "here reads only those entries, and the 100-task benchmark evaluates 300 times instead of 10,000.",
        "",
        "| benchmark | method | seeds | RA (ours) | RA (paper) | RA reproduced | BTI (ours) | BTI (paper) "
        "| BTI reproduced | train time / run | x La-MAML |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    missed = []
    for (benchmark, method), runs in cells.items():
        p = paper.get(benchmark, {}).get(method)
        if not runs:
            lines.append(f"| {benchmark} | {method} | 0/{seeds} | not run | | | | | | | |")
            continue
        ra, bti = mean_std([r["ra"] for r in runs]), mean_std([r["bti"] for r in runs])
        train = float(np.mean([r["train_time_s"] for r in runs]))
        lamaml_runs = cells.get((benchmark, "la-maml")) or []
        ratio = train / np.mean([r["train_time_s"] for r in lamaml_runs]) if lamaml_runs else float("nan")
        marks = ["yes" if reproduced(ours[0], *p[key]) else "**no**" for ours, key in ((ra, "ra"), (bti, "bti"))] \
            if p else ["n/a", "n/a"]
        paper_ra = f"{p['ra'][0]:.2f} +/- {p['ra'][1]:.2f}" if p else "NOT FOUND"
        paper_bti = f"{p['bti'][0]:.2f} +/- {p['bti'][1]:.2f}" if p else "NOT FOUND"
        lines.append(f"| {benchmark} | {method} | {len(runs)}/{seeds} | {ra[0]:.2f} +/- {ra[1]:.2f} | {paper_ra} "
                     f"| {marks[0]} | {bti[0]:.2f} +/- {bti[1]:.2f} | {paper_bti} | {marks[1]} | {train:.0f} s{threads_mark(runs)} "
                     f"| {ratio:.1f}{threads_mark(runs + lamaml_runs)} |")
        if "**no**" in marks:
            which = " and ".join(k for k, mark in zip(("RA", "BTI"), marks) if mark == "**no**")
            missed.append((benchmark, method, which))
    return "\n".join(lines + claims_section(cells) + _missed_section(missed)) + "\n"


def write_table1(cells: dict, seeds: int, command: str, targets: list[Path], rebuilt: bool = False) -> str:
    """Write the table to each target and its runs beside it (runs_csv_path); return the first table."""
    return write_tables(lambda name: table1_markdown(cells, seeds, command, rebuilt=rebuilt, runs_csv=name),
                        runs_csv(cells), targets)


def _missed_section(missed: list[tuple[str, str, str]]) -> list[str]:
    """Each cell that is not reproduced, with the recorded explanation or 'open question'."""
    if not missed:
        return []
    notes = table1_notes()
    lines = ["", "## Cells not reproduced", ""]
    for benchmark, method, which in missed:
        note = notes.get(benchmark, {}).get(method) or notes.get("any", {}).get(method) or \
            "open question: no explanation recorded."
        lines.append(f"- **{benchmark} / {method}** ({which}): {' '.join(note.split())}")
    return lines
