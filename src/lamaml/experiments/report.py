"""Results as text: one run's summary (``lamaml run``), a store's runs (``lamaml runs``), and the
store grouped by setting, mean +/- std over seeds, beside the paper (``lamaml report``).

The report groups runs by benchmark, method and every other setting except the seed (groups.py); the
settings that differ between groups of one (benchmark, method) are shown, so a grid sweep reads
as a table. Standard deviations are sample standard deviations (ddof = 1) over the seeds of a
group; a group of one run shows its value and n=1. The paper's number stands beside a group only
when the group ran the paper's protocol (``paper_cell``); elsewhere a dash, and a footnote says why.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import ValidationError

from ..atomic import write_text_atomic
from ..errors import UserError
from .groups import flatten, group_by_setting, latest_per_run, show_value
from .reproduce.paper import paper_table1
from .store import open_store

FORMATS = ("table", "markdown", "csv", "latex")


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; no deviation for one value, neither for none."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(array):
        return None, None
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else None


# Settings that change where or how fast a run computes, or what else it measures, and not the
# numbers the paper reports: a group differing from the paper only in these (or in a method's
# hyperparameters marked computation-only, MethodParams.computation_only) is its protocol.
NOT_PROTOCOL = ("seed", "device", "train_threads", "eval_batch_size", "evaluate", "analyses", "analysis_every",
                "analysis_samples", "eval_every")
PAPER_SETTING = "single"    # Table 1 is the single-pass protocol


def paper_cell(config: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The paper's Table 1 cell for runs of ``config`` (any seed), or None and why there is none.

    A cell is shown only beside the paper's protocol: every task of the benchmark, the paper's
    setting and the preset's hyperparameters (``resolve_config`` for the group's benchmark, method
    and hparams), so a 2-task run or a changed rate is never read against the paper's number.
    """
    from ..config import RunConfig, resolve_config
    from ..data import benchmark_info
    benchmark, method = config["benchmark"], config["method"]
    table = paper_table1()
    if benchmark not in table:
        return None, f"no paper number for {benchmark}: the packaged paper table (Table 1) is MNIST only"
    if method not in table[benchmark]:
        return None, f"no paper number for {method} on {benchmark}: Table 1 reports {', '.join(table[benchmark])}"
    try:
        ours = flatten(RunConfig(**config).model_dump())
        paper = flatten(resolve_config(benchmark, method, setting=PAPER_SETTING,
                                        hparams=ours["hparams"]).model_dump())
    except (ValidationError, UserError) as error:   # a config this version no longer reads (a removed setting)
        detail = f"{'.'.join(map(str, error.errors()[0]['loc']))}: {error.errors()[0]['msg']}" \
            if isinstance(error, ValidationError) else str(error)
        return None, f"not comparable with the paper: this version cannot read the runs' config ({detail})"
    from ..methods import method_class
    ignored = set(NOT_PROTOCOL) | {f"params.{name}" for name in method_class(method).Params.computation_only()}
    info = benchmark_info(benchmark)
    for flat in (ours, paper):      # null means "all of them": the same as naming the benchmark's own
        flat["tasks"] = flat["tasks"] or info.n_tasks
        flat["samples_per_task"] = flat["samples_per_task"] or info.samples_per_task
    differences = [f"{key.removeprefix('params.')}={show_value(ours.get(key))} (paper {show_value(paper[key])})"
                   for key in paper if key not in ignored and ours.get(key) != paper[key]]
    differences += [f"{key.removeprefix('params.')}={show_value(ours[key])} (paper: none)"
                    for key in ours if key not in paper and key not in ignored]
    if differences:
        return None, "not the paper's protocol: " + ", ".join(differences)
    return table[benchmark][method], None


def summarize_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The store's ``done`` rows, the latest of each run (groups.latest_per_run: a seed run twice counts
    once), grouped by setting (groups.group_by_setting), mean and std over seeds,
    and the paper's cell where the group ran the paper's protocol (``paper_cell``)."""
    table = []
    done = latest_per_run([row for row in rows if row["status"] == "done"], lambda row: json.loads(row["config"]))
    for group in group_by_setting(done, lambda row: json.loads(row["config"])):
        runs = group.members
        reference, note = paper_cell(json.loads(runs[0]["config"]))
        table.append({
            "benchmark": group.benchmark, "method": group.method, "settings": group.settings_text,
            "seeds": len(runs),
            "ra": _stats([r["ra"] for r in runs]), "bti": _stats([r["bti"] for r in runs]),
            "train_time_s": _stats([r["train_time_s"] for r in runs]),
            "aaa": _stats([_metric(r, "aaa") for r in runs]),
            "paper_ra": tuple(reference["ra"]) if reference else None,
            "paper_bti": tuple(reference["bti"]) if reference else None,
            "paper_note": note,
        })
    return table


def _metric(row: dict[str, Any], key: str) -> float | None:
    """A metric the store keeps only inside the run's metrics.json (e.g. AAA, of runs with eval_every)."""
    value = json.loads(row.get("metrics") or "{}").get(key)
    return None if value is None else float(value)


def _pm(pair: tuple[float | None, float | None], digits: int = 2, sep: str = " +/- ") -> str:
    mean, std = pair
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f}{sep}{std:.{digits}f}"


HEADER = ["benchmark", "method", "settings", "seeds", "RA", "RA (paper)", "BTI", "BTI (paper)", "train time (s)"]
AAA_HEADER = "AAA"      # a column only when some group ran anytime evaluation


def _with_aaa(rows: list[dict[str, Any]]) -> bool:
    return any(row.get("aaa", (None, None))[0] is not None for row in rows)


def _footnotes(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Each distinct reason for a missing paper cell, numbered in the order of the table."""
    numbers: dict[str, int] = {}
    for row in rows:
        if row["paper_note"] and row["paper_note"] not in numbers:
            numbers[row["paper_note"]] = len(numbers) + 1
    return numbers


def _cells(row: dict[str, Any], notes: dict[str, int], sep: str = " +/- ", aaa: bool = False) -> list[str]:
    def paper(pair):
        return _pm(pair, sep=sep) if pair else f"- [{notes[row['paper_note']]}]"
    return [row["benchmark"], row["method"], row["settings"] or "-", str(row["seeds"]), _pm(row["ra"], sep=sep),
            paper(row["paper_ra"]), _pm(row["bti"], sep=sep), paper(row["paper_bti"]),
            _pm(row["train_time_s"], 1, sep=sep)] + ([_pm(row.get("aaa", (None, None)), sep=sep)] if aaa else [])


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """The report in ``fmt``; a paper cell that is not shown is a dash whose footnote says why."""
    notes = _footnotes(rows)
    footnotes = [f"[{number}] {reason}" for reason, number in notes.items()]
    aaa = _with_aaa(rows)
    header = HEADER + ([AAA_HEADER] if aaa else [])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["benchmark", "method", "settings", "seeds", "ra_mean", "ra_std", "paper_ra_mean",
                         "paper_ra_std", "bti_mean", "bti_std", "paper_bti_mean", "paper_bti_std",
                         "train_time_mean_s", "train_time_std_s", "paper_note", "aaa_mean", "aaa_std"])
        blank = lambda pair: ["" if v is None else v for v in pair or (None, None)]  # noqa: E731
        for r in rows:
            writer.writerow([r["benchmark"], r["method"], r["settings"], r["seeds"], *blank(r["ra"]),
                             *blank(r["paper_ra"]), *blank(r["bti"]), *blank(r["paper_bti"]),
                             *blank(r["train_time_s"]), r["paper_note"] or "", *blank(r.get("aaa"))])
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cells(r, notes, aaa=aaa)) + " |" for r in rows]
    elif fmt == "latex":
        escape = lambda text: text.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
        lines = [r"\begin{tabular}{lllrllllr" + ("l" if aaa else "") + "}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        lines += [" & ".join(escape(c) for c in _cells(r, notes, sep=r" $\pm$ ", aaa=aaa)) + r" \\" for r in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        footnotes = [escape(line) for line in footnotes]
    else:
        table = [header] + [_cells(r, notes, aaa=aaa) for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    return "\n".join(lines + ([""] + footnotes if footnotes else [])) + "\n"


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
        *([("average anytime acc. (AAA)", _percent(metrics["aaa"])),
           ("worst-case acc. (WC-ACC)", _percent(metrics["worst_case_accuracy"]))] if "aaa" in metrics else []),
        ("training time", f"{metrics['train_time_s']:.1f} s ({metrics['ms_per_update']:.2f} ms/update, "
                          f"{metrics['updates']} updates)"),
        ("evaluation time", f"{metrics['eval_time_s']:.1f} s"),
        ("wall time", f"{metrics['wall_time_s']:.1f} s"),
        ("peak memory", f"{metrics['peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    scenario = f", {metrics['scenario']}" if metrics.get("scenario") in ("task-il", "class-il") else ""
    title = (f"{metrics['method']} on {metrics['benchmark']}{scenario}, seed {metrics['seed']}, "
             f"{len(metrics['acc_matrix'])} tasks")
    final = " ".join(f"{v:.0f}" for v in metrics["acc_matrix"][-1] if v is not None)
    lines = [title, "-" * len(title)] + [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines + [f"{'final accuracy per task':<{width}}  {final}"])


RUNS_HEADER = ["id", "benchmark", "method", "seed", "status", "ra", "bti", "train_time_s", "started_at"]
ERROR_WIDTH = 60     # a failed run's error, shortened; the whole of it is in the store's error column


def _differing_settings(configs: list[dict[str, Any]]) -> list[str]:
    """The config keys (flattened) whose value differs among the runs that have them."""
    values: dict[str, set[str]] = {}
    for config in configs:
        for key, value in config.items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return [key for key, seen in values.items() if len(seen) > 1 and key not in RUNS_HEADER]


def runs_table(rows: list[dict[str, Any]]) -> str:
    """What ``lamaml runs`` prints: one line per store row (with a column for each setting that
    differs among them, and the error of failed runs), then the count."""
    configs = [flatten(json.loads(row["config"])) for row in rows]
    settings = _differing_settings(configs)
    failed = any(row["status"] == "failed" for row in rows)
    header = RUNS_HEADER + [key.removeprefix("params.") for key in settings] + (["error"] if failed else [])

    def error(text: str | None) -> str:
        text = text or ""
        return text if len(text) <= ERROR_WIDTH else text[:ERROR_WIDTH - 3].rstrip() + "..."
    table = [[("" if row[k] is None else f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]))
              for k in RUNS_HEADER] + [show_value(config[key]) if key in config else "" for key in settings]
             + ([error(row["error"])] if failed else []) for row, config in zip(rows, configs)]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines + [f"{len(rows)} run(s)"])
