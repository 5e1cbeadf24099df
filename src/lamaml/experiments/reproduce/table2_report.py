"""Table 2 as Markdown, its runs as CSV and its claims (config/paper/table2_claims.yaml), from the
cells of a plan (table2.py) and the finished runs of each.

Ours: mean +/- sample std over seeds of RA and BTI from the validation matrix (as the paper) and, beside
them, from the test matrix of the same runs; the paper's RA where it is at hand (config/paper/table2.yaml)
with the reproduction mark of Table 1's rule. A table of runs on part of each benchmark (``--tasks``,
fewer ``samples_per_task``) says so in its title and has no paper column: its claims are judged on our
numbers only.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .claims import METHOD_NAMES, ClaimBook, Stat, claims_section, load_claims
from .paper import TABLE2_COLUMNS, paper_table2, table2_methods
from .table2_ordering import ordering_section
from .tables import (commits_line, csv_text, generated_lines, reproduced, run_row, seed_of, threads_mark,
                     unique_runs)

TABLE2_RUN_COLUMNS = ["benchmark", "setting", "method", "seed", "ra", "bti", "test_ra", "test_bti",
                      "learning_accuracy", "train_time_s", "eval_time_s", "code_commit", "code_used",
                      "train_threads_used", "resumed", "config_hash", "settings"]
BASELINES_OF_LA_MAML = "every other method but IID"


def table2_claims() -> dict[str, Any]:
    """Table 2's claims (config/paper/table2_claims.yaml), checked on load."""
    return load_claims("table2_claims.yaml", tuple(TABLE2_COLUMNS), tuple(table2_methods()), "columns")


def paper_ra(column: str, method: str) -> float | None:
    benchmark, setting = column.split("/")
    value = paper_table2()["ra"].get(benchmark, {}).get(setting, {}).get(method)
    return None if value is None else float(value)


def paper_stat(column: str, method: str, metric: str) -> Stat | None:
    """The paper's mean RA of a cell, its spread unknown (NaN: claims judge it on means alone)."""
    value = paper_ra(column, method) if metric == "ra" else None
    return None if value is None else Stat(value, math.nan, table2_claims()["paper_seeds"])


def table2_book(full: bool, scope: str) -> ClaimBook:
    rule = ("The paper's column judges the paper's RA means alone: its stds, BTI and times are not at hand."
            if full else f"These runs cover the {scope} of each benchmark: the claims are judged on our numbers "
            "only, and say nothing yet of the paper's claims on the whole benchmarks.")
    return ClaimBook(table2_claims, "columns", paper_stat if full else None, glance, "table2_claims.yaml",
                     "these benchmarks", rule, part=not full)


def _values(runs: list[dict], key: str, test: bool = False) -> list[float]:
    values = [(r.get("test") or {}).get(key) if test else r.get(key) for r in runs]
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _pm(values: list[float]) -> str:
    """mean +/- sample std; one run: its value and (n=1), no spread made up; n/a (IID has no BTI: it
    learns every task at once)."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{float(np.mean(values)):.2f} +/- {float(np.std(values, ddof=1)):.2f}"


def glance(cells: dict) -> list[str]:
    """Per column, on means alone: La-MAML's RA against every other method's but IID's, and IID's."""
    mean = lambda c, m: float(np.mean(_values(cells[(c, m)], "ra")))  # noqa: E731
    lines = []
    for column in dict.fromkeys(c for c, _ in cells):
        if not cells.get((column, "la-maml")):
            lines.append(f"- {column}: La-MAML not run yet.")
            continue
        ours = mean(column, "la-maml")
        others = [m for c, m in cells if c == column and m not in ("la-maml", "iid")]
        above = [m for m in others if cells[(column, m)] and mean(column, m) >= ours]
        waiting = [m for m in others if not cells[(column, m)]]
        verdict = f"above {BASELINES_OF_LA_MAML}'s" if not above else "NOT above " + ", ".join(
            f"{METHOD_NAMES.get(m, m)}'s {mean(column, m):.2f}" for m in above)
        iid = f"; IID's {mean(column, 'iid'):.2f}" if cells.get((column, "iid")) else ""
        lines.append(f"- {column}: La-MAML's RA {ours:.2f} is {verdict}{iid}"
                     + (f" ({', '.join(waiting)} not run yet)" if waiting else "") + ".")
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


BENCHMARK_NAMES = {"cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}


def _benchmark_names(plan: list) -> str:
    names = [BENCHMARK_NAMES.get(b, b) for b in dict.fromkeys(cell.benchmark for cell in plan)]
    return " and ".join(names)


def table2_markdown(plan: list, cells: dict, seeds: int, command: str, scope: str | None, rebuilt: bool = False,
                    runs_csv: str | None = None, tasks: int | None = None,
                    running: dict[tuple[str, str], list[str]] | None = None, samples: int | None = None,
                    departures: list[str] | None = None) -> str:
    """The table of ``plan``'s cells (table2.Cell: benchmark, setting, method, spec, absent), notes on what
    ran where, and the claims section; ``scope``: the part of each benchmark the runs cover (e.g. ``first 1
    task``), None for whole benchmarks, the only runs the paper's numbers stand beside; ``tasks``: the tasks
    each run covered (None: all); ``samples``: the training samples per task (None: all); ``running``: per cell,
    where its unfinished runs' checkpoints stand; ``departures``: the ``--set`` keys by which the runs leave the
    paper's presets."""
    running = running or {}
    full = scope is None
    lines = [
        f"# Table 2 ({_benchmark_names(plan)}, task-aware): lamaml "
        + ("vs the paper" if full else f"on the {scope} (not compared with the paper)"), "",
        *generated_lines(command, rebuilt),
        commits_line(cells),
        *([f"The runs behind it, one row each: `{runs_csv}`, beside this file."] if runs_csv else []),
        "Ours: mean +/- sample std over seeds. RA and BTI: the validation matrix (10% of each class's training "
        "images held out), as the paper; test RA and BTI: the same runs' test matrix.",
        *(["Paper: mean RA (config/paper/table2.yaml: the authors' README charts); NOT FOUND where no number is "
           "at hand (every BTI and std; the IID, iCaRL, Meta-BGD, La-ER and Sync La-MAML rows).",
           "Reproduced (yes) when our mean RA is within max(1.5, 2 x paper std) of the paper's, either side; no "
           "paper std is at hand, so within 1.5 points."]
          + ([f"**These runs leave the paper's presets (`--set` {', '.join(departures)}): \"RA reproduced\" says how "
              "near these settings land to the paper's numbers, not whether its protocol reproduces them.**"]
             if departures else []) if full else
          [f"These runs cover the {scope} of each benchmark, so no number here is compared with the paper's, "
           "which are for whole benchmarks."]),
        "Time: mean training time per run (evaluation excluded; one thread per run, `--jobs` runs at once), and "
        "its ratio to La-MAML's in the same column.",
        "",
        _row(["benchmark", "setting", "method", "seeds", "RA (ours)", *(["RA (paper)", "RA reproduced"] if full else []),
              "BTI (ours)", "test RA", "test BTI", "train time / run", "x La-MAML"]),
        "|---" * (12 if full else 10) + "|",
    ]
    for cell in plan:
        runs = cells.get((cell.column, cell.method)) or []
        name = cell.method + (" (its multi-pass run)" if cell.spec and cell.setting != cell.spec.set["setting"] else "")
        p = paper_ra(cell.column, cell.method)
        paper = [f"{p:.2f}" if p is not None else "NOT FOUND"] if full else []
        if not runs:
            reason = f"not run: {cell.absent}" if cell.absent else \
                "in progress (see the notes)" if (cell.column, cell.method) in running else "not run yet"
            lines.append(_row([cell.benchmark, cell.setting, name, f"0/{cell.seeds}", reason,
                               *(paper + [""] if full else []), "", "", "", "", ""]))
            continue
        ra = _values(runs, "ra")
        if full:
            paper.append("n/a" if p is None else "yes" if reproduced(float(np.mean(ra)), p, 0.0) else "**no**")
        train = float(np.mean(_values(runs, "train_time_s")))
        reference = cells.get((cell.column, "la-maml")) or []
        base = _values(reference, "train_time_s")
        lines.append(_row([cell.benchmark, cell.setting, name, f"{len(runs)}/{cell.seeds}", _pm(ra), *paper,
                           _pm(_values(runs, "bti")), _pm(_values(runs, "ra", True)), _pm(_values(runs, "bti", True)),
                           f"{train:.0f} s{threads_mark(runs)}",
                           f"{train / float(np.mean(base)):.1f}{threads_mark(runs + reference)}"
                           if base else "n/a"]))
    return "\n".join(lines + _notes(plan, running, cells) + ordering_section(cells, tasks, part=not full, samples=samples)
                     + claims_section(cells, table2_book(full, scope or ""))) + "\n"


def _notes(plan: list, running: dict[tuple[str, str], list[str]] | None = None, cells: dict | None = None) -> list[str]:
    notes = [f"- In progress, {column} {method}: " + "; ".join(texts) + " (the same command resumes it)."
             for (column, method), texts in (running or {}).items()]
    if any(threads_mark(runs) for runs in (cells or {}).values()):
        notes.append("- A time marked `(N threads)` was trained on N threads (`--set train_threads=N`, or "
                     "`auto` with N cores to itself), not the one of the rest; a ratio so marked compares times on different thread counts, and a claim "
                     "on times between such runs is not judged (n/a).")
    resumed = [f"{column} {method} seed {seed_of(run)}" for (column, method), runs in (cells or {}).items()
               for run in runs if run.get("resumed")]
    if resumed:
        notes.append("- Resumed from their checkpoints after their processes were stopped (a training time is the sum "
                     "of its processes', each measured under its own load): " + ", ".join(resumed) + ".")
    if any(c.spec and c.setting != c.spec.set["setting"] for c in plan):
        notes.append("- IID, the joint-training oracle (an upper bound, not a continual learner), ran multi-pass "
                     "only in the paper: its one multi-pass run stands in the single-pass column too.")
    if any(c.absent for c in plan):
        notes.append("- MER ran single-pass only in the paper; it is not run multi-pass.")
    scaled = sorted({(c.benchmark, c.spec.set["iterations"]) for c in plan
                     if c.spec and c.method == "iid" and "iterations" in c.spec.set})
    for benchmark, iterations in scaled:
        notes.append(f"- {benchmark}: IID's epochs are {iterations} batches here, the preset's 5000 (made for the "
                     "whole benchmark) in proportion to the training samples these runs see, unless `--set "
                     "iterations=N` gave them.")
    return ["", "Notes:", "", *notes] if notes else []


def table2_runs_csv(cells: dict) -> str:
    """One CSV row per run, in the table's order and by seed; a run that stands in two columns (IID's)
    once, under the setting it ran."""
    order = {key: i for i, key in enumerate(cells)}
    place = {id(run): (order[key], seed_of(run)) for key, runs in reversed(cells.items()) for run in runs}
    runs = sorted(unique_runs(cells), key=lambda run: place[id(run)])
    return csv_text([run_row(run, run["benchmark"], run["method"]) for run in runs], TABLE2_RUN_COLUMNS)
