"""What the reproduced tables share: the rule, where their runs came from, and their runs as CSV.

``reproduce table1`` and ``reproduce table2`` each write a Markdown table and, beside it, one CSV row
per run behind it (``<table>-runs.csv``), so every number can be audited from the repository; both
say in their header which commits the runs ran and warn when any ran uncommitted code.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ...atomic import write_text_atomic
from ..store import NOT_IDENTITY, canonical_config, config_hash

STORE_NAME = "results.sqlite"

RUN_COLUMNS = ["benchmark", "method", "seed", "ra", "bti", "learning_accuracy", "train_time_s", "eval_time_s",
               "code_commit", "code_used", "train_threads_used", "resumed", "config_hash", "settings"]
# The config fields a row names in columns of their own, so left out of its settings.
_SETTINGS_SKIP = ("benchmark", "method", "seed")


def reproduced(mean: float, paper_mean: float, paper_std: float) -> bool:
    """The rule the tables state above themselves: within max(1.5, 2 paper stds) of the paper, either side."""
    return abs(mean - paper_mean) <= max(1.5, 2 * paper_std)


def generated_lines(command: str, rebuilt: bool) -> list[str]:
    """When, by which command, at which commit and on what machine a table was written."""
    from ...engine.results import code_commit
    commit = code_commit()      # this package's checkout, with +dirty for local changes, wherever it runs from
    return [f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}`"
            + (" (the table rebuilt from the store of its runs by the same command with `--table-only`)"
               if rebuilt else ""),
            f"at commit {commit or 'unknown'} on {platform.machine()}, {os.cpu_count()} CPU cores."]


def unique_runs(cells: dict) -> list[dict[str, Any]]:
    """The runs of the cells, each once (by configuration hash; a run without its config by identity)."""
    unique = {}
    for runs in cells.values():
        for run in runs:
            unique.setdefault(config_hash(run["config"]) if run.get("config") else id(run), run)
    return list(unique.values())


def codes_of(run: dict[str, Any]) -> list[str]:
    """The commits a run trained with: every process of a run resumed from checkpoints (``code_used``,
    ``"<version> <commit>"`` each, ``unrecorded`` for checkpoints older than that record), else its one
    ``code_commit``; ``unknown`` where a process ran outside a checkout."""
    used = run.get("code_used") or [run.get("code_commit")]
    commits = [str(c).split(" ")[-1] if c else "unknown" for c in used]
    return list(dict.fromkeys("unknown" if c == "None" else c for c in commits))


def commits_line(cells: dict) -> str:
    """Which commits the runs ran, with how many runs each (a run resumed by other code under each of
    them), and plainly whether any ran uncommitted code (``+dirty``), outside a checkout (no commit) or
    in part with code no record names; a run standing in two cells counts once."""
    runs = unique_runs(cells)
    if not runs:
        return "No runs are recorded yet."
    counts = Counter(c for r in runs for c in codes_of(r))
    spanning = sum(len(codes_of(r)) > 1 for r in runs)
    text = _commits_text(counts, runs)
    if spanning:
        text += (f" {spanning} of them trained in several processes with different code (resumed from its "
                 f"checkpoints), counted under each commit it ran." if spanning == 1 else
                 f" {spanning} of them trained in several processes with different code (resumed from their "
                 f"checkpoints), each counted under every commit it ran.")
    return text + _imported_text(runs)


def _imported_text(runs: list[dict[str, Any]]) -> str:
    """Which runs the store holds as restored rows of an exported runs file (exported.py)."""
    sources = Counter(r["imported_from"] for r in runs if r.get("imported_from"))
    if not sources:
        return ""
    count = sum(sources.values())
    return (f" {count} of the {len(runs)} runs were restored into the store from the exported rows of "
            f"{', '.join(f'`{s}`' for s in sorted(sources))} (`lamaml runs --import`): their numbers are those "
            f"rows' (4 decimals), measured when the rows were written.")


def _commits_text(counts: Counter, runs: list[dict[str, Any]]) -> str:
    total = len(runs)
    named = ", ".join(f"{c} ({n} run{'s' if n > 1 else ''})" for c, n in sorted(counts.items()))
    dirty = sum(any(c.endswith("+dirty") for c in codes_of(r)) for r in runs)
    unknown = sum("unknown" in codes_of(r) for r in runs)
    unrecorded = sum("unrecorded" in codes_of(r) for r in runs)
    if not dirty and not unknown and not unrecorded:
        return (f"All {total} runs ran clean commit {next(iter(counts))}." if len(counts) == 1
                else f"All {total} runs ran clean commits: {named}.")
    warnings = []
    if dirty:
        warnings.append(f"{dirty} of {total} runs ran uncommitted code (+dirty), which no commit holds")
    if unknown:
        warnings.append(f"{unknown} of {total} runs recorded no commit")
    if unrecorded:
        warnings.append(f"{unrecorded} of {total} runs resumed from checkpoints that did not record their code "
                        f"(written before lamaml kept it): part of their training ran code no record names")
    return f"**Warning: {'; '.join(warnings)}.** The runs ran code at commit(s) {named}."


def settings_text(config: dict[str, Any]) -> str:
    """The config's settings that differ from their defaults, ``key=value`` sorted, method
    hyperparameters as ``params.key``; with those outside a run's identity (``train_threads=2``), so a
    row tells how its time was measured."""
    from ...config import RunConfig
    canonical = canonical_config(config)
    # one thread, the tables' norm, goes unsaid (as when it was the default; such rows import as one)
    canonical.update({k: config[k] for k in NOT_IDENTITY
                      if k in config and config[k] not in (RunConfig.model_fields[k].get_default(), 1)})
    flat = {k: v for k, v in canonical.items() if k not in _SETTINGS_SKIP and k != "params"}
    flat.update({f"params.{k}": v for k, v in (canonical.get("params") or {}).items()})
    show = lambda v: v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    return " ".join(f"{k}={show(v)}" for k, v in sorted(flat.items()))


def train_threads_of(run: dict[str, Any]) -> list[int]:
    """The training thread counts a finished run's time was measured on (one unless it was resumed on
    another count: ``train_threads_used``)."""
    configured = (run.get("config") or {}).get("train_threads")
    return run.get("train_threads_used") or [configured if isinstance(configured, int) else 1]


def thread_counts(runs: Iterable[dict[str, Any]]) -> list[int]:
    """Every training thread count the times of ``runs`` were measured on, sorted."""
    return sorted({n for run in runs for n in train_threads_of(run)})


def threads_mark(runs: Iterable[dict[str, Any]]) -> str:
    """`` (2 threads)`` beside a time measured on more than the tables' one thread per run (``1/2`` where
    runs, or one resumed run, had both)."""
    counts = thread_counts(runs)
    return "" if counts in ([], [1]) else f" ({'/'.join(map(str, counts))} threads)"


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{round(float(value), digits):.{digits}f}"


def run_row(run: dict[str, Any], benchmark: str, method: str) -> dict[str, str]:
    """One run as a CSV row: every column any table writes (``setting``, ``test_ra`` and ``test_bti``
    table 2's, ``aaa`` and ``worst_case_accuracy`` the successors'; each table keeps its own)."""
    config = run.get("config")
    test = run.get("test") or {}
    return {
        "benchmark": benchmark, "method": method,
        "setting": str((config or {}).get("setting", "")),
        "seed": str(run.get("seed", (config or {}).get("seed", ""))),
        "ra": _number(run.get("ra"), 4), "bti": _number(run.get("bti"), 4),
        "test_ra": _number(test.get("ra"), 4), "test_bti": _number(test.get("bti"), 4),
        "aaa": _number(run.get("aaa"), 4), "worst_case_accuracy": _number(run.get("worst_case_accuracy"), 4),
        "learning_accuracy": _number(run.get("learning_accuracy"), 4),
        "train_time_s": _number(run.get("train_time_s"), 3), "eval_time_s": _number(run.get("eval_time_s"), 3),
        "code_commit": str(run.get("code_commit") or ""),
        # Only for a run resumed from checkpoints: every process's code and training thread count
        "code_used": "; ".join(run.get("code_used") or []),
        "train_threads_used": " ".join(map(str, run.get("train_threads_used") or [])),
        "resumed": "yes" if run.get("resumed") else "",
        "config_hash": config_hash(config) if config else "",
        "settings": settings_text(config) if config else "",
    }


def seed_of(run: dict[str, Any]) -> int:
    return run.get("seed", run.get("config", {}).get("seed", 0))


def run_rows(cells: dict) -> list[dict[str, str]]:
    """One row per run, in the table's order (benchmark, then method) and by seed."""
    order = {key: i for i, key in enumerate(cells)}
    runs = sorted(((benchmark, method, run) for (benchmark, method), runs in cells.items() for run in runs),
                  key=lambda x: (order[(x[0], x[1])], seed_of(x[2])))
    return [run_row(run, benchmark, method) for benchmark, method, run in runs]


def csv_text(rows: Iterable[dict[str, str]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Every column of run_row, as `lamaml runs --export` writes them (and --import reads them back).
ALL_RUN_COLUMNS = ["benchmark", "setting", "method", "seed", "ra", "bti", "test_ra", "test_bti", "aaa",
                   "worst_case_accuracy", "learning_accuracy", "train_time_s", "eval_time_s", "code_commit",
                   "code_used", "train_threads_used", "resumed", "config_hash", "settings"]


def store_runs_csv(rows: list[dict[str, Any]]) -> str:
    """Finished store rows (``Store.query``) as one CSV row each, every column of run_row."""
    runs = []
    for row in rows:
        run = {**json.loads(row["metrics"] or "{}"), "config": json.loads(row["config"])}
        runs.append(run_row(run, row["benchmark"], row["method"]))
    return csv_text(runs, ALL_RUN_COLUMNS)


def runs_csv(cells: dict) -> str:
    return csv_text(run_rows(cells), RUN_COLUMNS)


def runs_csv_path(table: Path) -> Path:
    """Where a table's runs go: beside it, ``table1.md`` -> ``table1-runs.csv``."""
    return table.with_name(table.stem + "-runs.csv")


def write_tables(render: Callable[[str | None], str], runs: str, targets: list[Path]) -> str:
    """Write ``render(name of the runs file)`` to each target and ``runs`` (CSV) beside it
    (runs_csv_path); return the first table."""
    tables = []
    for target in targets:
        table = render(runs_csv_path(target).name)
        write_text_atomic(runs_csv_path(target), runs)
        write_text_atomic(target, table)
        tables.append(table)
    return tables[0] if tables else render(None)
