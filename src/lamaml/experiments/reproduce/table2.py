"""``lamaml reproduce table2``: the paper's Table 2 (Split CIFAR-100 and Split Tiny ImageNet-200,
task-aware, single- and multi-pass), every (benchmark, setting, method) over seeds, beside the paper.

As ``reproduce table1``, a preset of ``lamaml sweep`` + report: every run is recorded in the results
store ``OUT/results.sqlite``, finished runs are skipped, so a rerun continues a killed reproduction;
inside a run, a checkpoint every ``checkpoint_every`` (10 minutes by default) lets the rerun resume it
mid-way (engines.py). The table is rebuilt from the store at the end (and by ``--table-only``), with
its runs beside it (``table2-runs.csv``) and the paper's claims under it (table2_report.py).

What runs where (config/paper/table2.yaml): each method at its preset for the column's setting; IID,
which the paper ran multi-pass only, runs its multi-pass preset once and stands in both columns; MER,
single-pass only in the paper, is not run multi-pass. ``--set`` keys apply to the methods that have them
(a run setting, or a hyperparameter of at least one method). A run on part of a benchmark (``--tasks``
below its task count, or fewer ``samples_per_task``) is never compared with the paper's numbers; there,
IID's ``iterations`` per epoch (the authors' 5000 batches, made for the whole benchmark) shrink in
proportion to the training samples, unless ``--set iterations=N`` says otherwise.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import RunConfig, parse_value, resolve_config
from ...data import benchmark_info
from ...errors import UserError
from ...methods import METHODS, method_class
from ..store import config_hash
from ..sweep import SweepSpec, combinations, done_by_hash, done_metrics, run_sweep
from .paper import TABLE2_BENCHMARKS, TABLE2_SETTINGS, column_name, paper_table2, table2_methods
from .tables import STORE_NAME, runs_csv_path, write_tables

CHECKPOINT_EVERY = "10m"
TABLE_NAME = "table2.md"
# The longest runs, started first so the pool ends together (docs/reproduction.md: projected times).
SLOWEST = ("iid", "mer", "meta-bgd", "c-maml", "la-maml", "sync-la-maml", "la-er")


@dataclass(frozen=True)
class Cell:
    """One (benchmark, setting, method) of the table: the sweep that fills it, or why nothing does."""
    benchmark: str
    setting: str                    # the column's; IID's run is multi-pass in both
    method: str
    spec: SweepSpec | None = None
    absent: str = ""                # why it is not run (the paper never ran it so)
    seeds: int = 1                  # how many seeds the cell asks for (0..seeds-1)

    @property
    def column(self) -> str:
        return column_name(self.benchmark, self.setting)


def choose(text: str | None, allowed: list[str], option: str, known: set[str] | None = None) -> list[str]:
    """A comma-separated option (None: every allowed value), each checked against ``known`` (default
    ``allowed``), in the order given."""
    if text is None:
        return list(allowed)
    chosen = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    wrong = [v for v in chosen if v not in (known or set(allowed))]
    if wrong or not chosen:
        raise UserError(f"{option} {text}: choose from {', '.join(sorted(known or allowed))}, separated by commas")
    return chosen


def check_overrides(overrides: dict[str, Any], methods: list[str]) -> None:
    """Refuse what --set may not say here: the setting and the tasks (their own options) and keys that are
    neither a run setting nor a hyperparameter of any method of the table."""
    for key, option in (("setting", "--settings"), ("tasks", "--tasks")):
        if key in overrides:
            raise UserError(f"--set {key}: table2 chooses it with {option}")
    run_fields = set(RunConfig.model_fields) - {"benchmark", "method", "params"}
    for key in overrides:
        if key not in run_fields and not any(key in method_class(m).Params.model_fields for m in methods):
            raise UserError(f"--set {key}: neither a run setting nor a hyperparameter of {', '.join(methods)}")


def _keys_of(method: str) -> set[str]:
    return set(RunConfig.model_fields) | set(method_class(method).Params.model_fields)


def data_share(benchmark: str, tasks: int | None, samples_per_task: int | None) -> float:
    """The part of the benchmark's training samples a run sees (1: all of them)."""
    info = benchmark_info(benchmark)
    task_part = min(tasks or info.n_tasks, info.n_tasks) / info.n_tasks
    return task_part * min(samples_per_task or info.samples_per_task, info.samples_per_task) / info.samples_per_task


def scaled_iterations(benchmark: str, method: str, setting: str, own: dict[str, Any], tasks: int | None) -> dict:
    """For a joint method with fixed batches per epoch (IID's ``iterations``), on part of a benchmark
    and without a user's value: that count times the part of the samples seen (at least 1)."""
    if "iterations" in own or "iterations" not in method_class(method).Params.model_fields:
        return {}
    config = resolve_config(benchmark, method, own, tasks=tasks, setting=setting)
    share = data_share(benchmark, config.tasks, config.samples_per_task)
    iterations = config.params.get("iterations")
    if not iterations or share >= 1:
        return {}
    return {"iterations": max(1, round(iterations * share))}


def table2_plan(benchmarks: list[str], settings: list[str], methods: list[str], seeds: int, tasks: int | None,
                overrides: dict[str, Any], seeds_of: dict[str, int] | None = None) -> list[Cell]:
    """Every cell of the table, in its order (benchmark, setting, method), with the sweep that fills it;
    ``seeds_of``: methods that run another number of seeds than ``seeds``."""
    check_overrides(overrides, methods)
    seeds_of = seeds_of or {}
    unknown = sorted(set(seeds_of) - set(methods))
    if unknown or any(n < 1 for n in seeds_of.values()):
        raise UserError(f"--seeds-of {', '.join(f'{m}={n}' for m, n in seeds_of.items())}: give methods of the "
                        f"table ({', '.join(methods)}) and seed counts >= 1")
    paper = paper_table2()
    cells = []
    for benchmark in benchmarks:
        for setting in settings:
            for method in methods:
                only = paper["only_setting"].get(method)
                count = seeds_of.get(method, seeds)
                if only and only != setting:
                    cells.append(Cell(benchmark, setting, method, absent=f"the paper ran {method} {only}-pass only",
                                      seeds=count))
                    continue
                runs_as = paper["same_run_in_both"].get(method, setting)
                own = {k: v for k, v in overrides.items() if k in _keys_of(method)}
                own.update(scaled_iterations(benchmark, method, runs_as, own, tasks))
                spec = SweepSpec(benchmarks=[benchmark], methods=[method], seeds=list(range(count)),
                                 set={**own, "setting": runs_as}, tasks=tasks)
                cells.append(Cell(benchmark, setting, method, spec, seeds=count))
    return cells


def samples_override(overrides: dict[str, Any]) -> int | None:
    """``--set samples_per_task=N`` as a number (None: not given, or null)."""
    value = overrides.get("samples_per_task")
    value = parse_value(value) if isinstance(value, str) else value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def comparable(plan: list[Cell], tasks: int | None, overrides: dict[str, Any]) -> bool:
    """Whether the runs cover every task and every training sample of their benchmarks (else the paper's
    numbers, made on the whole benchmark, are not theirs to be compared with)."""
    return all(data_share(b, tasks, samples_override(overrides)) >= 1 for b in {c.benchmark for c in plan})


# Run settings that leave the paper's protocol as it is: where and how fast a run computes, and what else
# its evaluation records besides the matrix RA and BTI read.
PROTOCOL_NEUTRAL = ("device", "cuda_precision", "deterministic", "train_threads", "eval_batch_size", "evaluate",
                    "eval_every", "anytime_samples", "analyses", "analysis_every", "analysis_samples")


def departures(overrides: dict[str, Any]) -> list[str]:
    """The ``--set`` keys that change what the runs compute against the paper's presets (the tasks and
    samples aside: scope_text says those)."""
    return sorted(k for k in overrides if k not in PROTOCOL_NEUTRAL and k != "samples_per_task")


def scope_text(plan: list[Cell], tasks: int | None, overrides: dict[str, Any]) -> str | None:
    """What part of each benchmark the runs cover, e.g. ``first 1 task, 50 samples per task``; None: all
    of it (only then do the paper's numbers, made on whole benchmarks, stand beside ours)."""
    if comparable(plan, tasks, overrides):
        return None
    samples = samples_override(overrides)
    parts = ([f"first {tasks} task{'s' if tasks > 1 else ''}"] if tasks else []) + \
        ([f"{samples} samples per task"] if samples else [])
    return ", ".join(parts)


def _slowest_first(config: dict[str, Any]) -> tuple[int, bool]:
    rank = SLOWEST.index(config["method"]) if config["method"] in SLOWEST else len(SLOWEST)
    return rank, config["setting"] != "multi"


def run_table2(out: Path, plan: list[Cell], jobs: int, data_dir: str | None, engine: str = "local",
               address: str | None = None, checkpoint_every: str | None = CHECKPOINT_EVERY,
               gpus_per_run: float = 1.0) -> list[dict[str, Any]]:
    specs = [cell.spec for cell in plan if cell.spec]
    return run_sweep(specs, out / STORE_NAME, jobs, data_dir, engine, address, order=_slowest_first, project=True,
                     checkpoint_every=checkpoint_every, gpus_per_run=gpus_per_run)


def in_progress(out: Path, plan: list[Cell], done: dict[str, dict] | None = None) -> dict[tuple[str, str], list[str]]:
    """For each cell, its unfinished runs that left a checkpoint: ``seed k: <where it stands>`` (what a
    reader of a table of runs that take sessions wants to know of the rows still empty). ``done``:
    done_by_hash's answer, when the caller has read the store already."""
    from ..engines import checkpoint_progress
    done = done_by_hash(out / STORE_NAME) if done is None else done
    found: dict[tuple[str, str], list[str]] = {}
    for cell in plan:
        for config in (c.model_dump() for c in combinations(cell.spec)) if cell.spec else ():
            text = None if config_hash(config) in done else checkpoint_progress(out / STORE_NAME, config)
            if text:
                found.setdefault((cell.column, cell.method), []).append(f"seed {config['seed']}: {text}")
    return found


def collect(out: Path, plan: list[Cell], by_hash: dict[str, dict] | None = None) -> dict[tuple[str, str], list[dict]]:
    """Metrics of the finished runs of each cell that is run, ``(column, method)`` -> runs, from the store
    (``by_hash``: done_by_hash's answer, when the caller has read it already)."""
    by_hash = done_by_hash(out / STORE_NAME) if by_hash is None else by_hash
    return {(cell.column, cell.method): done_metrics(out / STORE_NAME, cell.spec, by_hash)
            for cell in plan if cell.spec}


def reproduce_table2(out: Path, benchmarks: str | None, settings: str | None, methods: str | None, seeds: int,
                     tasks: int | None, overrides: dict[str, Any], jobs: int, engine: str = "local",
                     address: str | None = None, data_dir: str | None = None,
                     checkpoint_every: str | None = CHECKPOINT_EVERY, table: str | None = None,
                     table_only: bool = False, command: str = "lamaml reproduce table2",
                     seeds_of: dict[str, int] | None = None, gpus_per_run: float = 1.0) -> str:
    """The whole command: plan, run what is not done (unless ``table_only``; each run checkpointing every
    ``checkpoint_every``, None: CHECKPOINT_EVERY, ``off``: never), write ``OUT/table2.md`` (and ``table``)
    with the runs beside each; return what to print."""
    from .table2_report import table2_markdown, table2_runs_csv
    plan = table2_plan(choose(benchmarks, TABLE2_BENCHMARKS, "--benchmarks"),
                       choose(settings, TABLE2_SETTINGS, "--settings"),
                       choose(methods, table2_methods(), "--methods", set(METHODS)), seeds, tasks, overrides,
                       seeds_of)
    folder = Path(out)
    checkpoint_every = None if checkpoint_every in ("off", "none", "0") else checkpoint_every or CHECKPOINT_EVERY
    if not table_only:
        run_table2(folder, plan, jobs, data_dir, engine, address, checkpoint_every, gpus_per_run)
    elif not (folder / STORE_NAME).exists():
        raise UserError(f"--table-only: no store of runs in {folder} ({STORE_NAME}); run without --table-only first")
    finished = done_by_hash(folder / STORE_NAME)       # one read of the store for the cells and the running rows
    cells = collect(folder, plan, finished)
    scope = scope_text(plan, tasks, overrides)
    targets = [folder / TABLE_NAME] + ([Path(table)] if table else [])
    running = in_progress(folder, plan, finished)
    text = write_tables(lambda name: table2_markdown(plan, cells, seeds, command, scope, rebuilt=table_only,
                                                     runs_csv=name, tasks=tasks, running=running,
                                                     samples=samples_override(overrides),
                                                     departures=departures(overrides)),
                        table2_runs_csv(cells), targets)
    if scope:
        print("table2: these runs cover part of each benchmark; the table does not compare them with the paper",
              file=sys.stderr)
    return text + "table: " + ", ".join(map(str, targets)) + "; its runs: " + \
        ", ".join(str(runs_csv_path(t)) for t in targets)
