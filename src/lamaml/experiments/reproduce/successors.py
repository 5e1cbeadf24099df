"""``lamaml reproduce successors``: La-MAML beside its successor VR-MCL and today's replay baselines.

Not a table of the La-MAML paper: the methods of config/paper/successors.yaml (La-MAML, C-MAML,
VR-MCL, ER, ER-ACE, DER++, MER) on the paper's three MNIST benchmarks, its protocol, and on Split MNIST
class-incremental, the protocol of the successors' papers, over seeds. As ``reproduce table1``, a preset
of ``lamaml sweep`` + report: runs go to ``OUT/results.sqlite``, finished ones are skipped, and the
table is rebuilt from the store (``--table-only`` rebuilds it alone), its runs beside it as CSV.

Every run evaluates anytime (``eval_every``, per benchmark in the YAML), so the table has AAA and
WC-ACC beside RA and BTI. Under it, findings stated from the numbers alone: the ranking by RA, VR-MCL
against La-MAML and the best replay baseline against La-MAML, each judged as the claims of Table 1
are (Welch's t-test on the difference of mean RA, p < 0.05 either way, else within noise).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ...config import resolve_config
from ...errors import UserError
from ..sweep import SweepSpec, done_metrics, run_sweep
from .claims import METHOD_NAMES, evaluate_claim, ours_stat
from .table2 import choose
from .table2_report import _pm as pm, _values
from .tables import (STORE_NAME, commits_line, csv_text, generated_lines, run_row, runs_csv_path, threads_mark,
                     write_tables)

TABLE_NAME = "successors.md"
REPLAY = ("er", "er-ace", "der++")
RUN_COLUMNS = ["benchmark", "method", "seed", "ra", "bti", "aaa", "worst_case_accuracy", "learning_accuracy",
               "train_time_s", "eval_time_s", "code_commit", "code_used", "train_threads_used", "resumed",
               "config_hash", "settings"]


@lru_cache(maxsize=None)
def successors_setup() -> dict[str, Any]:
    """config/paper/successors.yaml: ``methods``, ``seeds`` and ``benchmarks`` (-> their run settings)."""
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/successors.yaml").read_text())


# The incoming batch the anytime cadence of successors.yaml counts in (its ``eval_every`` batches).
CADENCE_BATCH = 10


def successors_plan(seeds: int, tasks: int | None = None, overrides: dict[str, Any] | None = None,
                    benchmarks: str | None = None, methods: str | None = None) -> list[SweepSpec]:
    """Sweeps per benchmark: its methods at their presets plus the benchmark's anytime settings. The
    cadence counts batches of CADENCE_BATCH samples: a method whose preset streams another batch size
    (MER: 1) evaluates after as many samples, in a sweep of its own, so its curve has as many points
    and its worst case is a minimum over as many as the others'."""
    setup = successors_setup()
    specs = []
    for benchmark in choose(benchmarks, list(setup["benchmarks"]), "--benchmarks"):
        settings = {**setup["benchmarks"][benchmark], **(overrides or {})}
        groups: dict[int, list[str]] = {}
        for method in choose(methods, setup["methods"], "--methods"):
            batch = settings.get("batch_size") or resolve_config(benchmark, method).batch_size
            groups.setdefault(int(batch), []).append(method)
        for batch, names in groups.items():
            own = dict(settings)
            if "eval_every" in own and "eval_every" not in (overrides or {}) and batch != CADENCE_BATCH:
                own["eval_every"] = max(1, round(int(own["eval_every"]) * CADENCE_BATCH / batch))
            specs.append(SweepSpec(benchmarks=[benchmark], methods=names, seeds=list(range(seeds)), set=own,
                                   tasks=tasks))
    return specs


def _slowest_first(config: dict[str, Any]) -> tuple[bool, bool, bool]:
    # MER (one sample at a time) and VR-MCL (two trajectories) are the longest, Split MNIST the longest stream.
    return config["method"] != "mer", config["method"] != "vr-mcl", config["benchmark"] != "split-mnist"


def collect(out: Path, plan: list[SweepSpec]) -> dict[tuple[str, str], list[dict]]:
    cells: dict[tuple[str, str], list[dict]] = {(b, m): [] for spec in plan for b in spec.benchmarks
                                                for m in spec.methods}
    for metrics in done_metrics(out / STORE_NAME, plan):
        cells[(metrics["benchmark"], metrics["method"])].append(metrics)
    return cells


def _pm(runs: list[dict], key: str) -> str:
    return pm(_values(runs, key))


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def _compare(cells: dict, benchmark: str, a: str, b: str) -> str:
    """``a`` against ``b`` on RA, in words: above, below or within noise (Table 1's claims rule)."""
    verdict = evaluate_claim({"metric": "ra", "op": ">", "kind": "compare"},
                             ours_stat(cells, benchmark, a, "ra"), ours_stat(cells, benchmark, b, "ra"))
    words = {"supported": "above", "not supported": "below", "within noise": "within noise of"}
    if verdict.verdict not in words:        # too few seeds: the numbers, no judgement
        return f"{_name(a)}'s RA against {_name(b)}'s is not judged ({verdict.verdict}: {verdict.detail})"
    return f"{_name(a)}'s RA is {words[verdict.verdict]} {_name(b)}'s ({verdict.detail})"


def findings(cells: dict) -> list[str]:
    """What the numbers show, per benchmark, in sentences made from them alone."""
    lines = []
    for benchmark in dict.fromkeys(b for b, _ in cells):
        ran = {m: runs for (b, m), runs in cells.items() if b == benchmark and runs}
        if not ran:
            continue
        mean = {m: float(np.mean([r["ra"] for r in runs])) for m, runs in ran.items()}
        ranking = sorted(mean, key=mean.get, reverse=True)
        parts = [f"by RA: {', '.join(f'{_name(m)} {mean[m]:.1f}' for m in ranking)}"]
        aaa = {m: float(np.mean([r["aaa"] for r in runs])) for m, runs in ran.items()
               if all(r.get("aaa") is not None for r in runs)}
        if len(aaa) > 1:
            by_aaa = sorted(aaa, key=aaa.get, reverse=True)
            same = by_aaa == [m for m in ranking if m in aaa]
            parts.append("AAA ranks them " + ("the same way" if same else
                         "differently: " + ", ".join(f"{_name(m)} {aaa[m]:.1f}" for m in by_aaa)))
        if "la-maml" in ran and "vr-mcl" in ran:
            parts.append(_compare(cells, benchmark, "vr-mcl", "la-maml"))
        replay = [m for m in REPLAY if m in ran]
        if "la-maml" in ran and replay:
            best = max(replay, key=mean.get)
            parts.append(f"the best replay baseline, {_compare(cells, benchmark, best, 'la-maml')}")
        lines.append(f"- **{benchmark}**: " + "; ".join(parts) + ".")
    return lines


def successors_markdown(cells: dict, seeds: int, command: str, rebuilt: bool = False,
                        runs_csv: str | None = None) -> str:
    setup = successors_setup()
    lines = [
        "# Beyond the paper: La-MAML, VR-MCL and strong replay baselines on MNIST",
        "",
        *generated_lines(command, rebuilt),
        commits_line(cells),
        *([f"The runs behind it, one row each: `{runs_csv}`, beside this file."] if runs_csv else []),
        "Not a table of the La-MAML paper: nothing here is compared with its numbers. Each method runs at its",
        "preset (`lamaml list`); Rotations, Permutations and Many Permutations in the paper's protocol",
        "(single pass, domain-incremental), Split MNIST class-incremental (one head, no task id at test).",
        "Mean +/- sample std over seeds. RA, BTI: the accuracy matrix, as Table 1. AAA: average anytime",
        "accuracy, the mean over the points of anytime evaluation of the accuracy on the tasks seen so far;",
        "WC-ACC: worst-case accuracy (De Lange et al. 2023; engine/metrics.py). Anytime evaluation: "
        + "; ".join(f"{b} every {s['eval_every']} batches" + (f" on {s['anytime_samples']} images a task"
                                                             if s.get("anytime_samples") else "")
                    for b, s in setup["benchmarks"].items())
        + f" (batches of {CADENCE_BATCH} samples: MER, which streams one sample at a time, every as many samples).",
        "Time: mean training time per run (evaluation excluded; one thread per run).",
        "",
        "| benchmark | method | seeds | RA | BTI | AAA | WC-ACC | train time / run | x La-MAML |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (benchmark, method), runs in cells.items():
        if not runs:
            lines.append(f"| {benchmark} | {method} | 0/{seeds} | not run | | | | | |")
            continue
        train = float(np.mean([r["train_time_s"] for r in runs]))
        reference = cells.get((benchmark, "la-maml")) or []
        ratio = f"{train / np.mean([r['train_time_s'] for r in reference]):.1f}" if reference else "-"
        lines.append(f"| {benchmark} | {method} | {len(runs)}/{seeds} | {_pm(runs, 'ra')} | {_pm(runs, 'bti')} "
                     f"| {_pm(runs, 'aaa')} | {_pm(runs, 'worst_case_accuracy')} | {train:.0f} s{threads_mark(runs)} "
                     f"| {ratio}{threads_mark(runs + reference) if reference else ''} |")
    found = findings(cells)
    if found:
        lines += ["", "## What it shows", "",
                  "Each comparison is judged as Table 1's claims are: above or below when Welch's t-test on the",
                  "difference of mean RA gives p < 0.05 (two-sided; t and its df are shown), else within noise.",
                  "These rank presets, not methods at their best: La-MAML's and C-MAML's values are their",
                  "authors' MNIST-tuned ones; VR-MCL's come from its authors' README for CIFAR and Tiny ImageNet",
                  "and were not tuned on MNIST; ER, ER-ACE and DER++ share one untuned setup (lr 0.01) at La-MAML's",
                  "glances, memory, replay batch and clip (config/presets/mnist.yaml). A gap of a few points",
                  "may be tuning.", "",
                  *found]
    return "\n".join(lines) + "\n"


def successors_runs_csv(cells: dict) -> str:
    rows = []
    for (benchmark, method), runs in cells.items():
        for run in sorted(runs, key=lambda r: r.get("seed", 0)):
            rows.append(run_row(run, benchmark, method))
    return csv_text(rows, RUN_COLUMNS)


def reproduce_successors(out: Path, seeds: int, tasks: int | None, overrides: dict[str, Any], jobs: int,
                         data_dir: str | None, benchmarks: str | None = None, methods: str | None = None,
                         table: str | None = None, table_only: bool = False,
                         command: str = "lamaml reproduce successors") -> str:
    """Run what is not done (unless ``table_only``), write ``OUT/successors.md`` (and ``table``) with its
    runs beside; return the table and where it went."""
    plan = successors_plan(seeds, tasks, overrides, benchmarks, methods)
    if not table_only:
        run_sweep(plan, out / STORE_NAME, jobs, data_dir, order=_slowest_first, project=True)
    elif not (out / STORE_NAME).exists():
        raise UserError(f"--table-only: no store of runs in {out} ({STORE_NAME}); run without --table-only first")
    cells = collect(out, plan)
    targets = [out / TABLE_NAME] + ([Path(table)] if table else [])
    text = write_tables(lambda name: successors_markdown(cells, seeds, command, table_only, name),
                        successors_runs_csv(cells), targets)
    return text + "table: " + ", ".join(map(str, targets)) + "; its runs: " + \
        ", ".join(str(runs_csv_path(t)) for t in targets)
