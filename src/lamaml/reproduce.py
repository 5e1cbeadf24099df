"""``lamaml reproduce table1``: every cell of the paper's MNIST table, over seeds, beside the paper.

A thin preset of ``lamaml sweep`` + report: the 21 cells x seeds are one sweep recorded in the
results store ``OUT/results.sqlite``; runs already done there are skipped, so a rerun after a crash
resumes. The table is rebuilt from the store at the end (and by ``--table-only``), so its numbers
come only from recorded runs; beside it go the runs themselves, one CSV row each, and under it every
comparison the paper states in words on these benchmarks (config/paper/table1_claims.yaml), judged
on the paper's table and on ours.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .atomic import write_text_atomic

TABLE1_BENCHMARKS = ["mnist-rotations", "mnist-permutations", "mnist-many-permutations"]
TABLE1_METHODS = ["online", "ewc", "gem", "mer", "c-maml", "sync-la-maml", "la-maml"]


@lru_cache(maxsize=None)
def table1_notes() -> dict[str, dict[str, str]]:
    """Why a cell may miss the paper: benchmark -> method -> explanation, shown under the table for the
    cells that are not reproduced (config/paper/table1_notes.yaml)."""
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1_notes.yaml").read_text()) or {}


@lru_cache(maxsize=None)
def paper_table1() -> dict[str, dict[str, dict[str, list[float]]]]:
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1.yaml").read_text())


def reproduced(mean: float, paper_mean: float, paper_std: float) -> bool:
    """The rule of reference-results.md: within max(1.5, 2 paper stds) of the paper, either side."""
    return abs(mean - paper_mean) <= max(1.5, 2 * paper_std)


STORE_NAME = "results.sqlite"


# What each benchmark evaluates after every task: Rotations keeps RA after each task (the appendix F
# figure reads it), the others only the entries their metrics read (3T evaluations, not T^2).
TABLE1_EVALUATE = {"mnist-rotations": "seen", "mnist-permutations": "metrics", "mnist-many-permutations": "metrics"}


def table1_spec(seeds: int, tasks: int | None = None, overrides: dict[str, Any] | None = None,
                benchmarks=None, methods=None):
    """Table 1 as a sweep: every (benchmark, method) at its preset, seeds 0..N-1 (one spec per benchmark)."""
    from .sweep import SweepSpec
    return [SweepSpec(benchmarks=[benchmark], methods=methods or TABLE1_METHODS, seeds=list(range(seeds)),
                      set={"evaluate": TABLE1_EVALUATE[benchmark], **(overrides or {})}, tasks=tasks)
            for benchmark in benchmarks or TABLE1_BENCHMARKS]


def _slowest_first(config: dict[str, Any]) -> tuple[bool, bool]:
    # MER and the 100-task benchmark are the longest runs; started first, the pool ends together.
    return config["benchmark"] != "mnist-many-permutations", config["method"] != "mer"


def run_table1(out: Path, spec, jobs: int, data_dir: str | None) -> list[dict[str, Any]]:
    from .sweep import run_sweep
    return run_sweep(spec, out / STORE_NAME, jobs, data_dir, order=_slowest_first)


def collect(out: Path, spec) -> dict[tuple[str, str], list[dict]]:
    """Metrics of the finished runs of each cell, read from the store by configuration hash."""
    from .sweep import done_metrics
    cells: dict[tuple[str, str], list[dict]] = {(b, m): [] for one in spec for b in one.benchmarks
                                                for m in one.methods}
    for metrics in done_metrics(out / STORE_NAME, spec):
        cells[(metrics["benchmark"], metrics["method"])].append(metrics)
    return cells


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def table1_markdown(cells: dict, seeds: int, command: str, rebuilt: bool = False,
                    runs_csv: str | None = None) -> str:
    """The table, its claims section and the notes on missed cells; ``runs_csv`` names the file of its
    runs written beside it (see write_table1)."""
    paper = paper_table1()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Table 1 (MNIST, single pass): lamaml vs the paper",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}`"
        + (" (the table rebuilt from the store of its runs by the same command with `--table-only`)" if rebuilt else ""),
        f"at commit {commit or 'unknown'} on {platform.machine()}, {os.cpu_count()} CPU cores.",
        commits_line(cells),
        *([f"The runs behind it, one row each: `{runs_csv}`, beside this file."] if runs_csv else []),
        "Ours: mean +/- sample std over seeds; paper: mean +/- std (reference-results.md).",
        "Reproduced (yes) when our mean is within max(1.5, 2 x paper std) of the paper's, either side.",
        "Time: mean training time per run (evaluation excluded), and its ratio to La-MAML's.",
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
        if "**no**" in marks:
            which = " and ".join(k for k, mark in zip(("RA", "BTI"), marks) if mark == "**no**")
            missed.append((benchmark, method, which))
    return "\n".join(lines + claims_section(cells) + _missed_section(missed)) + "\n"


def _glance(cells: dict) -> list[str]:
    """Per benchmark, on means alone: La-MAML's RA against Online, EWC and GEM, and MER's training time
    against La-MAML's (on a partial store, only the cells that have runs)."""
    mean = lambda b, m, key: float(np.mean([r[key] for r in cells[(b, m)]]))  # noqa: E731
    lines = []
    for benchmark in dict.fromkeys(b for b, _ in cells):
        ran = lambda m: bool(cells.get((benchmark, m)))  # noqa: E731
        if not ran("la-maml"):
            lines.append(f"- {benchmark}: La-MAML not run yet.")
            continue
        ours = mean(benchmark, "la-maml", "ra")
        baselines = [m for m in ("online", "ewc", "gem") if ran(m)]
        beaten = [m for m in baselines if mean(benchmark, m, "ra") < ours]
        above = "above Online's, EWC's and GEM's" if len(beaten) == 3 else \
            f"NOT above all of Online, EWC, GEM (only {', '.join(beaten) or 'none'}" + \
            "".join(f"; {m} not run yet" for m in ("online", "ewc", "gem") if m not in baselines) + ")"
        speed = "MER not run yet" if not ran("mer") else \
            f"MER trains {mean(benchmark, 'mer', 'train_time_s') / mean(benchmark, 'la-maml', 'train_time_s'):.1f}x " \
            "as long as La-MAML"
        lines.append(f"- {benchmark}: La-MAML's RA {ours:.2f} is {above}; {speed}.")
    return lines


# ---- The paper's claims (config/paper/table1_claims.yaml), judged on the paper's table and on ours ----

CLAIM_METRICS = {"ra": "RA", "bti": "BTI", "train_time_s": "train time"}
METHOD_NAMES = {"online": "Online", "ewc": "EWC", "gem": "GEM", "mer": "MER", "c-maml": "C-MAML",
                "sync-la-maml": "Sync La-MAML", "la-maml": "La-MAML"}
CLAIM_KINDS = ("compare", "ratio")
CLAIM_OPS = (">", "<")
SUPPORTED, NOT_SUPPORTED, WITHIN_NOISE = "supported", "not supported", "within noise"
# What a claim's row can say: the three verdicts, then why a claim could not be judged.
VERDICT_ORDER = (SUPPORTED, NOT_SUPPORTED, WITHIN_NOISE, "too few seeds", "not run", "n/a")
# How many standard errors of the difference a claim's margin must clear, either way.
CLAIM_SE = 2.0


@lru_cache(maxsize=None)
def table1_claims() -> dict[str, Any]:
    """``{"paper_seeds": n, "claims": [...]}`` from config/paper/table1_claims.yaml, checked on load."""
    data = yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1_claims.yaml").read_text())
    problems = claim_problems(data)
    if problems:    # packaged data: a bad entry is a bug in the file, not a user mistake
        raise ValueError("config/paper/table1_claims.yaml: " + "; ".join(problems))
    return data


def claim_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a claims file: unknown benchmarks, methods, metrics, kinds or operators, a
    repeated id, a missing quote or source, a ratio without its value."""
    problems = []
    if not isinstance(data.get("paper_seeds"), int) or data["paper_seeds"] < 2:
        problems.append("paper_seeds must be an integer >= 2")
    ids = Counter(c.get("id") for c in data.get("claims") or [])
    problems += [f"id {i!r} appears {n} times" for i, n in ids.items() if n > 1]
    for claim in data.get("claims") or []:
        where = f"claim {claim.get('id')!r}"
        for key in ("id", "quote", "source"):
            if not isinstance(claim.get(key), str) or not claim[key].strip():
                problems.append(f"{where}: {key} must be a non-empty string")
        if "note" in claim and not isinstance(claim["note"], str):
            problems.append(f"{where}: note must be a string")
        if not claim.get("benchmarks"):
            problems.append(f"{where}: benchmarks must list at least one benchmark")
        problems += [f"{where}: unknown benchmark {b!r}" for b in claim.get("benchmarks") or []
                     if b not in TABLE1_BENCHMARKS]
        problems += [f"{where}: unknown method {claim.get(side)!r} as {side}" for side in ("a", "b")
                     if claim.get(side) not in TABLE1_METHODS]
        if claim.get("a") == claim.get("b"):
            problems.append(f"{where}: a and b are the same method")
        if claim.get("metric") not in CLAIM_METRICS:
            problems.append(f"{where}: unknown metric {claim.get('metric')!r}")
        if claim.get("op") not in CLAIM_OPS:
            problems.append(f"{where}: op must be one of {' '.join(CLAIM_OPS)}")
        if claim.get("kind") not in CLAIM_KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(CLAIM_KINDS)}")
        value = claim.get("value")
        if claim.get("kind") == "ratio" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                             or value <= 0):
            problems.append(f"{where}: a ratio needs a positive number as value")
        if claim.get("kind") == "compare" and "value" in claim:
            problems.append(f"{where}: a comparison takes no value")
    return problems


@dataclass(frozen=True)
class Stat:
    """A cell's metric over seeds: mean, sample std and the number of seeds behind them."""
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class Verdict:
    verdict: str    # supported, not supported, within noise; or why it could not be judged
    detail: str     # the numbers it was judged on


def claim_text(claim: dict[str, Any]) -> str:
    """The claim in one line, e.g. "La-MAML RA > MER RA" or "MER train time / La-MAML train time > 6"."""
    metric = CLAIM_METRICS[claim["metric"]]
    a, b = METHOD_NAMES[claim["a"]], METHOD_NAMES[claim["b"]]
    if claim["kind"] == "ratio":
        return f"{a} {metric} / {b} {metric} {claim['op']} {claim['value']:g}"
    return f"{a} {metric} {claim['op']} {b} {metric}"


def judge(margin: float, se: float) -> str:
    """``margin``: how far the means go the claim's way (negative: the other way); ``se``: its standard
    error. Supported beyond CLAIM_SE standard errors the claim's way, not supported beyond them the
    other way, within noise between."""
    if margin > CLAIM_SE * se:
        return SUPPORTED
    if margin < -CLAIM_SE * se:
        return NOT_SUPPORTED
    return WITHIN_NOISE


def evaluate_claim(claim: dict[str, Any], a: Stat | None, b: Stat | None) -> Verdict:
    """One claim on one benchmark, from the two methods' statistics of the claim's metric.

    A comparison's margin is the difference of means (A - B for >, B - A for <), its standard error
    sqrt(s_A^2/n_A + s_B^2/n_B). A ratio's margin is A/B minus the stated value (the value minus A/B
    for <), its standard error the delta method's r * sqrt(s_A^2/(n_A A^2) + s_B^2/(n_B B^2)).
    """
    if a is None or b is None:
        return Verdict("no number", "")
    unit = " s" if claim["metric"] == "train_time_s" else ""
    digits = 0 if unit else 2
    sign = 1.0 if claim["op"] == ">" else -1.0
    if claim["kind"] == "ratio":
        if a.mean == 0 or b.mean == 0:
            return Verdict("n/a", "a mean of zero")
        ratio = a.mean / b.mean
        margin = sign * (ratio - claim["value"])
        se = abs(ratio) * math.sqrt(a.std ** 2 / (a.n * a.mean ** 2) + b.std ** 2 / (b.n * b.mean ** 2))
        means, se_text = f"{a.mean:.{digits}f}{unit} / {b.mean:.{digits}f}{unit} = {ratio:.2f}", f"{CLAIM_SE * se:.2f}"
    else:
        diff = a.mean - b.mean
        margin = sign * diff
        se = math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)
        means = f"{a.mean:.{digits}f}{unit} vs {b.mean:.{digits}f}{unit}: {diff:+.{digits}f}"
        se_text = f"{CLAIM_SE * se:.{digits}f}"
    if min(a.n, b.n) < 2:   # one seed has no spread, so no noise to judge a difference against
        return Verdict("too few seeds", f"{means}; {a.n} and {b.n} seed(s)")
    return Verdict(judge(margin, se), f"{means}, {CLAIM_SE:g} SE {se_text}")


def ours_stat(cells: dict, benchmark: str, method: str, metric: str) -> Stat | None:
    values = [float(r[metric]) for r in cells.get((benchmark, method)) or [] if r.get(metric) is not None]
    if not values:
        return None
    mean, std = _mean_std(values)
    return Stat(mean, std, len(values))


def paper_stat(benchmark: str, method: str, metric: str) -> Stat | None:
    cell = paper_table1().get(benchmark, {}).get(method, {}).get(metric)
    return Stat(float(cell[0]), float(cell[1]), table1_claims()["paper_seeds"]) if cell else None


def claim_rows(cells: dict) -> list[tuple[dict[str, Any], str, Verdict, Verdict]]:
    """(claim, benchmark, verdict on the paper's table, verdict on ours) for every claim on every one
    of its benchmarks that the table covers."""
    covered = {b for b, _ in cells}
    rows = []
    for claim in table1_claims()["claims"]:
        for benchmark in claim["benchmarks"]:
            if benchmark not in covered:
                continue
            side = lambda stat: [stat(benchmark, claim[s], claim["metric"]) for s in ("a", "b")]  # noqa: E731
            paper = evaluate_claim(claim, *side(paper_stat))
            ours = evaluate_claim(claim, *side(lambda b, m, k: ours_stat(cells, b, m, k)))
            # No number: the paper's table has no times; our store has no finished run of a cell.
            rows.append((claim, benchmark, Verdict("n/a", "") if paper.verdict == "no number" else paper,
                         Verdict("not run", "") if ours.verdict == "no number" else ours))
    return rows


def _verdict_cell(verdict: Verdict) -> str:
    mark = {SUPPORTED: "supported", NOT_SUPPORTED: "**not supported**", WITHIN_NOISE: "*within noise*"}
    text = mark.get(verdict.verdict, verdict.verdict)
    return f"{text} ({verdict.detail})" if verdict.detail else text


def claims_section(cells: dict) -> list[str]:
    """Every comparison the paper states in words on these benchmarks, judged on its table and on ours,
    with the rule, a count per verdict and the words each claim rests on."""
    data = table1_claims()
    rows = claim_rows(cells)
    counts = Counter(ours.verdict for _, _, _, ours in rows)
    lines = ["", "## The paper's claims on these numbers", "",
             "Means alone, at a glance:", "", *_glance(cells), "",
             "Every comparison the sources at hand state in words on these benchmarks "
             "(config/paper/table1_claims.yaml, which lists what was read and left out; the paper's body is not "
             "among them), judged on means over seeds.",
             f"Rule: the margin by which the means go the claim's way (for a ratio, the ratio minus the stated "
             f"value) against {CLAIM_SE:g} standard errors (SE) of it, SE = sqrt(s_A^2/n_A + s_B^2/n_B) "
             "(a ratio r = A/B: r sqrt(s_A^2/(n_A A^2) + s_B^2/(n_B B^2))): **supported** beyond "
             f"{CLAIM_SE:g} SE the claim's way, **not supported** beyond {CLAIM_SE:g} SE the other way, "
             f"**within noise** between. At 5 seeds a side, {CLAIM_SE:g} SE is about 1.3 pooled stds.",
             f"The paper's column applies the same rule to its Table 1, taking each std as over "
             f"{data['paper_seeds']} seeds (an assumption); its table has no times. Numbers: A vs B: A - B.",
             f"Ours, of {len(rows)}: " + (", ".join(f"{n} {v}" for v, n in sorted(
                 counts.items(), key=lambda item: VERDICT_ORDER.index(item[0]))) or "nothing to judge") + ".",
             "",
             "| claim | benchmark | comparison | paper's table | ours |",
             "|---|---|---|---|---|"]
    for claim, benchmark, paper, ours in rows:
        lines.append(f"| `{claim['id']}` | {benchmark} | {claim_text(claim)} | {_verdict_cell(paper)} "
                     f"| {_verdict_cell(ours)} |")
    lines += ["", "What each claim rests on:", ""]
    for claim in dict.fromkeys(c["id"] for c, *_ in rows):
        entry = next(c for c in data["claims"] if c["id"] == claim)
        where = "; ".join(" ".join(entry[k].split()) for k in ("source", "note") if entry.get(k))
        lines.append(f"- `{claim}`: \"{' '.join(entry['quote'].split())}\" ({where})")
    return lines


# ---- Where the runs came from, and the runs themselves ----

RUN_COLUMNS = ["benchmark", "method", "seed", "ra", "bti", "learning_accuracy", "train_time_s", "eval_time_s",
               "code_commit", "config_hash", "settings"]
# The config fields a row names in columns of their own, so left out of its settings.
_SETTINGS_SKIP = ("benchmark", "method", "seed")


def commits_line(cells: dict) -> str:
    """Which commits the runs ran, with how many runs each, and plainly whether any ran uncommitted
    code (``+dirty``) or outside a checkout (no commit)."""
    counts = Counter(str(r.get("code_commit") or "unknown") for runs in cells.values() for r in runs)
    total = sum(counts.values())
    if not total:
        return "No runs are recorded yet."
    named = ", ".join(f"{c} ({n} run{'s' if n > 1 else ''})" for c, n in sorted(counts.items()))
    dirty = sum(n for c, n in counts.items() if c.endswith("+dirty"))
    unknown = counts.get("unknown", 0)
    if not dirty and not unknown:
        return (f"All {total} runs ran clean commit {next(iter(counts))}." if len(counts) == 1
                else f"All {total} runs ran clean commits: {named}.")
    warnings = []
    if dirty:
        warnings.append(f"{dirty} of {total} runs ran uncommitted code (+dirty), which no commit holds")
    if unknown:
        warnings.append(f"{unknown} of {total} runs recorded no commit")
    return f"**Warning: {'; '.join(warnings)}.** The runs ran code at commit(s) {named}."


def _settings(config: dict[str, Any]) -> str:
    """The config's settings that differ from their defaults, ``key=value`` sorted, method
    hyperparameters as ``params.key``."""
    from .store import canonical_config
    canonical = canonical_config(config)
    flat = {k: v for k, v in canonical.items() if k not in _SETTINGS_SKIP and k != "params"}
    flat.update({f"params.{k}": v for k, v in (canonical.get("params") or {}).items()})
    show = lambda v: v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    return " ".join(f"{k}={show(v)}" for k, v in sorted(flat.items()))


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{round(float(value), digits):.{digits}f}"


def run_rows(cells: dict) -> list[dict[str, str]]:
    """One row per run, in the table's order (benchmark, then method) and by seed."""
    from .store import config_hash
    order = {key: i for i, key in enumerate(cells)}
    runs = sorted(((benchmark, method, run) for (benchmark, method), runs in cells.items() for run in runs),
                  key=lambda x: (order[(x[0], x[1])], x[2].get("seed", x[2].get("config", {}).get("seed", 0))))
    rows = []
    for benchmark, method, run in runs:
        config = run.get("config")
        rows.append({
            "benchmark": benchmark, "method": method,
            "seed": str(run.get("seed", (config or {}).get("seed", ""))),
            "ra": _number(run.get("ra"), 4), "bti": _number(run.get("bti"), 4),
            "learning_accuracy": _number(run.get("learning_accuracy"), 4),
            "train_time_s": _number(run.get("train_time_s"), 3), "eval_time_s": _number(run.get("eval_time_s"), 3),
            "code_commit": str(run.get("code_commit") or ""),
            "config_hash": config_hash(config) if config else "",
            "settings": _settings(config) if config else "",
        })
    return rows


def runs_csv(cells: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RUN_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(run_rows(cells))
    return out.getvalue()


def runs_csv_path(table: Path) -> Path:
    """Where a table's runs go: beside it, ``table1.md`` -> ``table1-runs.csv``."""
    return table.with_name(table.stem + "-runs.csv")


def write_table1(cells: dict, seeds: int, command: str, targets: list[Path], rebuilt: bool = False) -> str:
    """Write the table to each target and its runs beside it (runs_csv_path); return the first table."""
    csv_text = runs_csv(cells)
    tables = []
    for target in targets:
        table = table1_markdown(cells, seeds, command, rebuilt=rebuilt, runs_csv=runs_csv_path(target).name)
        write_text_atomic(runs_csv_path(target), csv_text)
        write_text_atomic(target, table)
        tables.append(table)
    return tables[0] if tables else table1_markdown(cells, seeds, command, rebuilt=rebuilt)


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
