"""``lamaml plot``: the figures a person would rather look at than read, from runs' metrics.

Every function takes metrics dicts (the content of ``metrics.json``, or of the store's metrics
column) and returns a matplotlib Figure; ``save`` writes it as PNG and PDF. Seeds of the same
setting are averaged, with one standard deviation shaded.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")   # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..config import preset  # noqa: E402
from ..errors import UserError  # noqa: E402

Metrics = dict[str, Any]
KINDS = ("matrix", "ra-curve", "ra-vs-time", "lr-robustness", "lr-grid", "alignment", "fast-weights", "lr-stats")
# The learning-rate hyperparameters of each variant (appendix E) and their names in the paper.
LR_KEYS = {"c-maml": ["alpha_init", "opt_wt"], "sync-la-maml": ["alpha_init", "opt_lr", "opt_wt"],
           "la-maml": ["alpha_init", "opt_lr"]}
LR_GRIDS = {"c-maml": ("alpha_init", "opt_wt"), "la-maml": ("alpha_init", "opt_lr")}
SYMBOL = {"alpha_init": r"$\alpha_0$ (initial / inner LR)", "opt_lr": r"$\eta$ (LR of the LRs)",
          "opt_wt": r"$\beta$ (weights' outer LR)"}
COLORS = {"la-maml": "tab:blue", "c-maml": "tab:orange", "sync-la-maml": "tab:green", "mer": "tab:red",
          "gem": "tab:purple", "ewc": "tab:brown", "online": "tab:gray", "er": "tab:pink", "a-gem": "tab:olive",
          "la-er": "tab:cyan", "iid": "black"}


def save(figure, path: Path) -> list[Path]:
    """Write ``path`` with suffix .png and .pdf (atomically); return both paths."""
    path = Path(path)
    written = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        with atomic_path(target, suffix=".tmp" + suffix) as tmp:   # savefig picks the format by the suffix
            figure.savefig(tmp, dpi=150, bbox_inches="tight")
        written.append(target)
    plt.close(figure)
    return written


def _matrix(run: Metrics) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in run["acc_matrix"]], dtype=float)


def ra_after_each_task(run: Metrics) -> np.ndarray:
    """RA after task t: mean accuracy over tasks 0..t, from row t of the accuracy matrix."""
    matrix = _matrix(run)
    return np.array([np.nanmean(matrix[t, :t + 1]) for t in range(len(matrix))])


def _by(runs: Iterable[Metrics], *keys) -> dict[tuple, list[Metrics]]:
    groups: dict[tuple, list[Metrics]] = defaultdict(list)
    for run in runs:
        groups[tuple(run[k] for k in keys)].append(run)
    return dict(sorted(groups.items()))


def _band(ax, x, series: list[np.ndarray], label: str, color=None, marker=None):
    stacked = np.vstack(series)
    mean = stacked.mean(0)
    ax.plot(x, mean, label=f"{label} (n={len(series)})" if len(series) > 1 else label, color=color, marker=marker)
    if len(series) > 1:
        std = stacked.std(0, ddof=1)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def _title(runs: list[Metrics]) -> str:
    return ", ".join(sorted({r["benchmark"] for r in runs}))


# -- one run ---------------------------------------------------------------------------------

def plot_matrix(run: Metrics):
    matrix = _matrix(run)
    T = len(matrix)
    fig, ax = plt.subplots(figsize=(1.2 + 0.32 * T, 0.9 + 0.3 * T))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("after training on task")
    ticks = range(0, T, max(1, T // 20))
    ax.set_xticks(list(ticks), [str(t + 1) for t in ticks])
    ax.set_yticks(list(ticks), [str(t + 1) for t in ticks])
    ax.set_title(f"{run['method']} on {run['benchmark']}, seed {run['seed']}: "
                 f"RA {run['ra']:.1f}, BTI {run['bti']:+.1f}")
    return fig


def plot_fast_weights(run: Metrics):
    """Blog figure 6: RA at the fast weights vs right after each meta-update."""
    points = run.get("series", {}).get("fast-weights")
    if not points:
        raise UserError("this run has no fast-weights series (run it with --analyses fast-weights)")
    updates = [p["update"] for p in points]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(updates, [p["ra_fast"] for p in points], color="tab:red", label=r"at the fast weights $\theta^j_k$ "
            "(during the inner updates)")
    ax.plot(updates, [p["ra_after"] for p in points], color="tab:blue", label=r"right after the meta-update "
            r"$\theta^{j+1}_0$")
    for previous, point in zip(points, points[1:]):
        if point["task"] != previous["task"]:
            ax.axvline(point["update"], color="0.8", linewidth=0.8, zorder=0)
    every = updates[0] if updates else 0
    ax.set_xlabel(f"meta-update (measured every {every}; grey lines: new task)")
    ax.set_ylabel("retained accuracy on tasks seen so far (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{run['method']} on {run['benchmark']}, seed {run['seed']}: RA during vs after meta-updates")
    ax.legend(loc="lower right")
    return fig


def plot_lr_stats(run: Metrics):
    points = run.get("series", {}).get("lr-stats")
    if not points:
        raise UserError("this run has no lr-stats series (run it with --analyses lr-stats)")
    fig, (mean_ax, zero_ax) = plt.subplots(1, 2, figsize=(12, 4))
    for name, group in _by(points, "parameter").items():
        updates = [p["update"] for p in group]
        mean_ax.plot(updates, [p["mean"] for p in group], label=name[0])
        zero_ax.plot(updates, [100 * p["fraction_nonpositive"] for p in group], label=name[0])
    mean_ax.set_ylabel(r"mean learned rate $\alpha$")
    zero_ax.set_ylabel(r"rates at or below zero (%)")
    for ax in (mean_ax, zero_ax):
        ax.set_xlabel("meta-update")
        ax.legend(fontsize=8)
    fig.suptitle(f"per-parameter learning rates of {run['method']} on {run['benchmark']}, seed {run['seed']}")
    return fig


# -- several runs ----------------------------------------------------------------------------

def plot_ra_curve(runs: list[Metrics]):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method,), group in _by(runs, "method").items():
        curves = [ra_after_each_task(r) for r in group]
        length = min(map(len, curves))
        _band(ax, np.arange(1, length + 1), [c[:length] for c in curves], method, COLORS.get(method), "o")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("retained accuracy (%)")
    ax.set_title(f"RA after each task, {_title(runs)}")
    ax.legend()
    return fig


def plot_ra_vs_time(runs: list[Metrics]):
    """Appendix F: RA after each task against the training time spent so far, per method."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method,), group in _by(runs, "method").items():
        usable = [r for r in group if r.get("train_time_after_task_s")]
        if not usable:
            continue
        length = min(len(r["train_time_after_task_s"]) for r in usable)
        times = np.mean([r["train_time_after_task_s"][:length] for r in usable], axis=0)
        curves = [ra_after_each_task(r)[:length] for r in usable]
        _band(ax, times, curves, method, COLORS.get(method), ".")
        ax.scatter(times[-1:], np.mean(curves, axis=0)[-1:], color=COLORS.get(method), s=60, zorder=3)
    ax.set_xlabel("training time (s, CPU; evaluation excluded)")
    ax.set_ylabel("retained accuracy after each task (%)")
    ax.set_title(f"RA versus wall-clock training time, {_title(runs)}")
    ax.legend()
    return fig


def plot_alignment(runs: list[Metrics]):
    """Appendix D: mean cosine similarity among the old tasks' gradients as task t arrives."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method,), group in _by(runs, "method").items():
        series = [r["series"]["alignment"] for r in group if r.get("series", {}).get("alignment")]
        if not series:
            continue
        length = min(map(len, series))
        tasks = np.array([p["task"] + 1 for p in series[0][:length]])   # 1-based, as the paper
        _band(ax, tasks, [np.array([p["cosine"] for p in s[:length]]) for s in series], method,
              COLORS.get(method), "o")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("streaming task t (gradients of tasks 1..t-1, held-out samples)")
    ax.set_ylabel("mean pairwise cosine similarity")
    ax.set_title(f"inter-task gradient alignment, {_title(runs)}")
    ax.legend()
    return fig


def _lr_value(run: Metrics, key: str) -> float:
    return run["config"]["params"].get(key, math.nan)


def plot_lr_robustness(runs: list[Metrics]):
    """Appendix E, figure 5: RA against each LR hyperparameter, the others at their presets."""
    methods = [m for m in LR_KEYS if any(r["method"] == m for r in runs)]
    if not methods:
        raise UserError("no c-maml, sync-la-maml or la-maml runs to plot")
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4), squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods):
        group = [r for r in runs if r["method"] == method]
        defaults = {k: preset(group[0]["benchmark"], method).get(k) for k in LR_KEYS[method]}
        for key in LR_KEYS[method]:
            others = [k for k in LR_KEYS[method] if k != key]
            line = defaultdict(list)
            for run in group:
                if all(math.isclose(_lr_value(run, k), defaults[k]) for k in others if defaults[k] is not None) \
                        and not math.isnan(_lr_value(run, key)):
                    line[_lr_value(run, key)].append(run["ra"])
            if len(line) < 2:
                continue
            xs = sorted(line)
            means = np.array([np.mean(line[x]) for x in xs])
            stds = np.array([np.std(line[x], ddof=1) if len(line[x]) > 1 else 0.0 for x in xs])
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=SYMBOL[key])
        ax.set_xscale("log")
        ax.set_xlabel("learning-rate hyperparameter value (log scale)")
        ax.set_title(f"{method}: presets " + ", ".join(f"{k}={v}" for k, v in defaults.items()), fontsize=9)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("retained accuracy (%)")
    fig.suptitle(f"RA vs learning rates, one varied at a time, {_title(runs)}")
    return fig


def plot_lr_grid(runs: list[Metrics]):
    """Appendix E, figure 6: RA over the 2-D grid of each variant's two LR hyperparameters."""
    by_method = {}
    for method, (row_key, col_key) in LR_GRIDS.items():
        cells = defaultdict(list)
        for run in runs:
            cell = (_lr_value(run, row_key), _lr_value(run, col_key))
            if run["method"] == method and not any(map(math.isnan, cell)):
                cells[cell].append(run["ra"])
        if cells:
            by_method[method] = cells
    if not by_method:
        raise UserError("no c-maml or la-maml runs to plot")
    fig, axes = plt.subplots(1, len(by_method), figsize=(6.5 * len(by_method), 4.8), squeeze=False)
    for ax, (method, cells) in zip(axes[0], by_method.items()):
        row_key, col_key = LR_GRIDS[method]
        rows = sorted({r for r, _ in cells})
        cols = sorted({c for _, c in cells})
        grid = np.full((len(rows), len(cols)), np.nan)
        for (r, c), values in cells.items():
            grid[rows.index(r), cols.index(c)] = np.mean(values)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlBu_r", origin="lower", aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols], rotation=45)
        ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
        ax.set_xlabel(SYMBOL[col_key])
        ax.set_ylabel(SYMBOL[row_key])
        ax.set_title(method)
        fig.colorbar(image, ax=ax, label="retained accuracy (%)")
    fig.suptitle(f"RA over learning-rate grids (log-spaced values), {_title(runs)}")
    fig.tight_layout()
    return fig


SINGLE = {"matrix": plot_matrix, "fast-weights": plot_fast_weights, "lr-stats": plot_lr_stats}
MANY = {"ra-curve": plot_ra_curve, "ra-vs-time": plot_ra_vs_time, "lr-robustness": plot_lr_robustness,
        "lr-grid": plot_lr_grid, "alignment": plot_alignment}


def plot(kind: str, runs: list[Metrics]):
    if kind in SINGLE:
        if len(runs) != 1:
            raise UserError(f"plot {kind} shows one run; {len(runs)} were selected (narrow --where)")
        return SINGLE[kind](runs[0])
    return MANY[kind](runs)
