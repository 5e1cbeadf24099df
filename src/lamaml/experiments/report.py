"""Results as text: one run's summary (``lamaml run``), a store's runs (``lamaml runs``), and the
store grouped by setting, mean +/- std over seeds, beside the paper (``lamaml report``).

The report groups runs by benchmark, method and every other setting except the seed (groups.py); the
settings that differ between groups of one (benchmark, method) are shown, so a grid sweep reads
as a table. Standard deviations are sample standard deviations (ddof = 1) over the seeds of a group.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..atomic import write_text_atomic
from .groups import group_by_setting
from .reproduce.paper import paper_table1
from .store import open_store

FORMATS = ("table", "markdown", "csv", "latex")


def _stats(values: list[float]) -> tuple[float, float]:
    array = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(array):
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarize_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The store's ``done`` rows grouped by setting (groups.group_by_setting), mean and std over seeds."""
    table = []
    paper = paper_table1()
    done = [row for row in rows if row["status"] == "done"]
    for group in group_by_setting(done, lambda row: json.loads(row["config"])):
        runs = group.members
        reference = paper.get(group.benchmark, {}).get(group.method)
        table.append({
            "benchmark": group.benchmark, "method": group.method, "settings": group.settings_text,
            "seeds": len(runs),
            "ra": _stats([r["ra"] for r in runs]), "bti": _stats([r["bti"] for r in runs]),
            "train_time_s": _stats([r["train_time_s"] for r in runs]),
            "paper_ra": tuple(reference["ra"]) if reference else None,
            "paper_bti": tuple(reference["bti"]) if reference else None,
        })
    return table


def _pm(pair: tuple[float, float] | None, digits: int = 2, sep: str = " +/- ") -> str:
    if pair is None:
        return "NOT FOUND"
    return f"{pair[0]:.{digits}f}{sep}{pair[1]:.{digits}f}"


HEADER = ["benchmark", "method", "settings", "seeds", "RA", "RA (paper)", "BTI", "BTI (paper)", "train time (s)"]


def _cells(row: dict[str, Any], sep: str = " +/- ") -> list[str]:
    return [row["benchmark"], row["method"], row["settings"] or "-", str(row["seeds"]), _pm(row["ra"], sep=sep),
            _pm(row["paper_ra"], sep=sep), _pm(row["bti"], sep=sep), _pm(row["paper_bti"], sep=sep),
            _pm(row["train_time_s"], 1, sep=sep)]


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "markdown":
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        return "\n".join(lines + ["| " + " | ".join(_cells(r)) + " |" for r in rows]) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["benchmark", "method", "settings", "seeds", "ra_mean", "ra_std", "paper_ra_mean",
                         "paper_ra_std", "bti_mean", "bti_std", "paper_bti_mean", "paper_bti_std",
                         "train_time_mean_s", "train_time_std_s"])
        for r in rows:
            paper_ra, paper_bti = r["paper_ra"] or ("", ""), r["paper_bti"] or ("", "")
            writer.writerow([r["benchmark"], r["method"], r["settings"], r["seeds"], *r["ra"], *paper_ra, *r["bti"],
                             *paper_bti, *r["train_time_s"]])
        return buffer.getvalue()
    if fmt == "latex":
        escape = lambda text: text.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
        lines = [r"\begin{tabular}{lllrllllr}", r"\toprule", " & ".join(HEADER) + r" \\", r"\midrule"]
        lines += [" & ".join(escape(c) for c in _cells(r, sep=r" $\pm$ ")) + r" \\" for r in rows]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"
    table = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in table) + "\n"


def report_store(store_path: str | Path, where: Iterable[str] = (), fmt: str = "table",
                 out: str | Path | None = None) -> str:
    """The report of the runs of an existing store that match ``where``; also written to ``out`` (atomically)."""
    text = render(summarize_runs(open_store(store_path).query(where)), fmt)
    if out:
        write_text_atomic(out, text)
    return text


# ---- one run, and a store's list of runs ----

def _percent(value: float | None, sign: str = "") -> str:
    return "n/a (not measured by this protocol)" if value is None else f"{value:{sign}.2f} %"


def summary_table(metrics: dict) -> str:
    """What ``lamaml run`` prints at the end: one run's metrics, times and final accuracies."""
    rows = [
        ("retained accuracy (RA)", _percent(metrics["ra"])),
        ("backward transfer (BTI)", _percent(metrics["bti"], "+")),
        ("BWT (first T-1 tasks)", _percent(metrics["bwt"], "+")),
        ("learning accuracy", _percent(metrics["learning_accuracy"])),
        ("forward transfer (FWT)", _percent(metrics["fwt"], "+")),
        ("training time", f"{metrics['train_time_s']:.1f} s ({metrics['ms_per_update']:.2f} ms/update, "
                          f"{metrics['updates']} updates)"),
        ("evaluation time", f"{metrics['eval_time_s']:.1f} s"),
        ("wall time", f"{metrics['wall_time_s']:.1f} s"),
        ("peak memory", f"{metrics['peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    title = f"{metrics['method']} on {metrics['benchmark']}, seed {metrics['seed']}, {len(metrics['acc_matrix'])} tasks"
    final = " ".join(f"{v:.0f}" for v in metrics["acc_matrix"][-1] if v is not None)
    lines = [title, "-" * len(title)] + [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines + [f"{'final accuracy per task':<{width}}  {final}"])


RUNS_HEADER = ["id", "benchmark", "method", "seed", "status", "ra", "bti", "train_time_s", "started_at"]


def runs_table(rows: list[dict[str, Any]]) -> str:
    """What ``lamaml runs`` prints: one line per store row, then the count."""
    table = [[("" if row[k] is None else f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]))
              for k in RUNS_HEADER] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(RUNS_HEADER)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(RUNS_HEADER, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in table]
    return "\n".join(lines + [f"{len(rows)} run(s)"])
