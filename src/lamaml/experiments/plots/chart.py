"""What every figure shares: the Chart (a figure and the numbers it draws), saving it, and the grouping,
panels, styles and bands of the figures of several runs."""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ...atomic import atomic_path, write_text_atomic
from ...engine.metrics import ra_so_far
from ...errors import UserError
from ..groups import Group, group_by_setting

Metrics = dict[str, Any]
COLORS = {"la-maml": "tab:blue", "c-maml": "tab:orange", "sync-la-maml": "tab:green", "mer": "tab:red",
          "gem": "tab:purple", "ewc": "tab:brown", "online": "tab:gray", "er": "tab:pink", "a-gem": "tab:olive",
          "la-er": "tab:cyan", "iid": "black"}
LINESTYLES = ("-", "--", "-.", ":")


@dataclass
class Chart:
    """A figure and the numbers it draws: one dict per plotted point (the same keys in every row of a
    kind), naming its series, the settings of the runs behind it and how many runs (n) it averages."""
    figure: Figure
    rows: list[dict[str, Any]]

    def csv(self) -> str:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in self.rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))       # shortest text that reads back as the same number
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def save(chart: Chart, path: str | Path) -> list[Path]:
    """Write ``path`` with suffix .png, .pdf and .csv (the numbers drawn), each atomically; return the paths."""
    path = Path(path)
    written = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        with atomic_path(target, suffix=".tmp" + suffix) as tmp:   # savefig picks the format by the suffix
            chart.figure.savefig(tmp, dpi=150, bbox_inches="tight")
        written.append(target)
    plt.close(chart.figure)
    write_text_atomic(path.with_suffix(".csv"), chart.csv())
    return written + [path.with_suffix(".csv")]


# -- one run's numbers -------------------------------------------------------------------------

def acc_matrix(run: Metrics) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in run["acc_matrix"]], dtype=float)


def ra_after_each_task(run: Metrics) -> np.ndarray:
    """RA after task t: mean accuracy over tasks 0..t, from row t of the accuracy matrix (NaN where one of
    them was not evaluated: engine.metrics.ra_so_far)."""
    matrix = acc_matrix(run)
    return np.array([np.nan if (ra := ra_so_far(matrix[t], t)) is None else ra for t in range(len(matrix))])


def require_ra_curves(runs: list[Metrics], kind: str) -> None:
    """Refuse a figure of RA after each task for runs that did not measure it (one UserError naming how many
    and how to get it), rather than draw the accuracy on the task just learned under RA's name."""
    lacking = [r for r in runs if "acc_matrix" not in r or np.isnan(ra_after_each_task(r)).any()]
    if lacking:
        raise UserError(f"plot {kind}: {len(lacking)} of the {len(runs)} selected runs did not measure the RA after "
                        f"every task (evaluate=metrics, the default, evaluates only what the final metrics read; "
                        f"runs restored from exported rows keep no matrix): rerun them with --set evaluate=seen, "
                        f"or select runs that have it (--where config.evaluate=seen)")


# -- several runs ------------------------------------------------------------------------------

def run_config(run: Metrics) -> dict[str, Any]:
    """The settings a run was made with (metrics written before they carried their config: the three
    that every metrics file names)."""
    return run.get("config") or {key: run[key] for key in ("benchmark", "method", "seed") if key in run}


def grouped(runs: Iterable[Metrics]) -> list[Group[Metrics]]:
    """Runs grouped as ``lamaml report`` groups them: benchmark, method and every setting but the seed."""
    return group_by_setting(runs, run_config)


def by_benchmark(groups: list[Group[Metrics]]) -> dict[str, list[Group[Metrics]]]:
    panels: dict[str, list[Group[Metrics]]] = {}
    for group in groups:
        panels.setdefault(group.benchmark, []).append(group)
    return panels


def one_benchmark(kind: str, groups: list[Group[Metrics]]) -> str:
    """The one benchmark of ``groups``; a figure that has no room for panels refuses a mix."""
    benchmarks = sorted({g.benchmark for g in groups})
    if len(benchmarks) > 1:
        raise UserError(f"plot {kind} draws one benchmark; the selected runs are on {', '.join(benchmarks)}: "
                        f"choose one with --where benchmark=NAME")
    return benchmarks[0]


def styles(panel: list[Group[Metrics]]) -> list[tuple[Any, str]]:
    """(color, line style) per series: the method's color while each method has one series; otherwise a
    color per series and a line style per method."""
    if max(Counter(g.method for g in panel).values()) == 1:
        return [(COLORS.get(g.method), "-") for g in panel]
    methods = list(dict.fromkeys(g.method for g in panel))
    palette = plt.get_cmap("tab10" if len(panel) <= 10 else "tab20")
    return [(palette(i % palette.N), LINESTYLES[methods.index(g.method) % len(LINESTYLES)])
            for i, g in enumerate(panel)]


def band(ax, x, series: list[np.ndarray], group: Group, style: tuple[Any, str], marker=None):
    """The mean of ``series`` as a line labelled with the group and n, one sample std shaded when n > 1;
    returns (mean, std), std None for a single run."""
    stacked = np.vstack(series)
    mean = stacked.mean(0)
    color, linestyle = style
    (line,) = ax.plot(x, mean, label=f"{group.label} (n={len(series)})", color=color, linestyle=linestyle,
                      marker=marker)
    if len(series) < 2:
        return mean, None
    std = stacked.std(0, ddof=1)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return mean, std


def point(group: Group, n: int, **values: Any) -> dict[str, Any]:
    """One CSV row: the series, the group it averages (its settings and n), then the plotted values."""
    return {"benchmark": group.benchmark, "series": group.label, "method": group.method,
            "settings": group.settings_text, "n": n, **values}


def panel_axes(count: int, width: float, height: float, sharey: bool = True):
    figure, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False, sharey=sharey)
    return figure, list(axes[0])
