"""Appendix E: RA against the learning-rate hyperparameters of the La-MAML variants, one panel per method.

Each point (or grid cell) is one group of runs as ``lamaml report`` groups them, seeds averaged. The
figures draw one benchmark and one setting of everything but the learning rates: runs that differ
in anything else (say glances) would be pooled into the same point, so they are refused instead.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ...config import preset
from ...errors import UserError
from ..groups import Group
from .chart import Chart, Metrics, grouped, one_benchmark, point

# The learning-rate hyperparameters of each variant (appendix E) and their names in the paper.
LR_KEYS = {"c-maml": ["alpha_init", "opt_wt"], "sync-la-maml": ["alpha_init", "opt_lr", "opt_wt"],
           "la-maml": ["alpha_init", "opt_lr"]}
LR_GRIDS = {"c-maml": ("alpha_init", "opt_wt"), "la-maml": ("alpha_init", "opt_lr")}
SYMBOL = {"alpha_init": r"$\alpha_0$ (initial / inner LR)", "opt_lr": r"$\eta$ (LR of the LRs)",
          "opt_wt": r"$\beta$ (weights' outer LR)"}


def _value(group: Group, key: str) -> float:
    value = group.config.get(f"params.{key}")
    return math.nan if value is None else float(value)


def _method_groups(kind: str, runs: list[Metrics], methods) -> tuple[str, dict[str, list[Group]]]:
    """The benchmark, and the groups of each of ``methods`` present, refusing what the figure would pool."""
    groups = grouped(runs)
    benchmark = one_benchmark(kind, groups) if groups else ""
    by_method = {}
    for method in methods:
        mine = [g for g in groups if g.method == method]
        if not mine:
            continue
        rates = {f"params.{key}" for key in LR_KEYS[method]}
        others = sorted({key.removeprefix("params.") for g in mine for key in g.varying if key not in rates})
        if others:
            raise UserError(f"plot {kind}: the {method} runs differ in {', '.join(others)} besides their learning "
                            f"rates, which one point would pool; select one value with --where config.KEY=VALUE "
                            f"(params.KEY for a hyperparameter)")
        by_method[method] = mine
    return benchmark, by_method


def _ra(group: Group) -> tuple[float, float | None]:
    values = [r["ra"] for r in group.members]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def plot_lr_robustness(runs: list[Metrics]) -> Chart:
    """Appendix E, figure 5: RA against each LR hyperparameter, the others at their presets."""
    benchmark, by_method = _method_groups("lr-robustness", runs, LR_KEYS)
    if not by_method:
        raise UserError("no c-maml, sync-la-maml or la-maml runs to plot")
    fig, axes = plt.subplots(1, len(by_method), figsize=(5 * len(by_method), 4), squeeze=False, sharey=True)
    rows = []
    for ax, (method, groups) in zip(axes[0], by_method.items()):
        defaults = {k: preset(benchmark, method).get(k) for k in LR_KEYS[method]}
        for key in LR_KEYS[method]:
            others = [k for k in LR_KEYS[method] if k != key and defaults[k] is not None]
            line = sorted(((_value(g, key), g) for g in groups if not math.isnan(_value(g, key))
                           and all(math.isclose(_value(g, k), defaults[k]) for k in others)), key=lambda p: p[0])
            if len(line) < 2:
                continue
            stats = [_ra(g) for _, g in line]
            ax.errorbar([x for x, _ in line], [m for m, _ in stats], yerr=[s or 0.0 for _, s in stats],
                        marker="o", capsize=3, label=SYMBOL[key])
            rows += [point(g, len(g.members), varied=key, value=x, ra_mean=m, ra_std=s)
                     for (x, g), (m, s) in zip(line, stats)]
        ax.set_xscale("log")
        ax.set_xlabel("learning-rate hyperparameter value (log scale)")
        ax.set_title(f"{method}: presets " + ", ".join(f"{k}={v}" for k, v in defaults.items()), fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not rows:
        plt.close(fig)
        raise UserError("plot lr-robustness: nothing to draw: no learning-rate hyperparameter takes two or more "
                        "values with the others at their presets")
    axes[0][0].set_ylabel("retained accuracy (%)")
    fig.suptitle(f"RA vs learning rates, one varied at a time, {benchmark}")
    return Chart(fig, rows)


def plot_lr_grid(runs: list[Metrics]) -> Chart:
    """Appendix E, figure 6: RA over the 2-D grid of each variant's two LR hyperparameters."""
    benchmark, by_method = _method_groups("lr-grid", runs, LR_GRIDS)
    cells_of = {}
    for method, groups in by_method.items():
        row_key, col_key = LR_GRIDS[method]
        cells = {(_value(g, row_key), _value(g, col_key)): g for g in groups}
        cells = {cell: g for cell, g in cells.items() if not any(map(math.isnan, cell))}
        if cells:
            cells_of[method] = cells
    if not cells_of:
        raise UserError("no c-maml or la-maml runs to plot")
    fig, axes = plt.subplots(1, len(cells_of), figsize=(6.5 * len(cells_of), 4.8), squeeze=False)
    rows = []
    for ax, (method, cells) in zip(axes[0], cells_of.items()):
        row_key, col_key = LR_GRIDS[method]
        row_values, col_values = sorted({r for r, _ in cells}), sorted({c for _, c in cells})
        grid = np.full((len(row_values), len(col_values)), np.nan)
        for (r, c), group in sorted(cells.items()):
            mean, std = _ra(group)
            grid[row_values.index(r), col_values.index(c)] = mean
            rows.append(point(group, len(group.members), row_setting=row_key, row_value=r, column_setting=col_key,
                              column_value=c, ra_mean=mean, ra_std=std))
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlBu_r", origin="lower", aspect="auto")
        for i in range(len(row_values)):
            for j in range(len(col_values)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(col_values)), [f"{c:g}" for c in col_values], rotation=45)
        ax.set_yticks(range(len(row_values)), [f"{r:g}" for r in row_values])
        ax.set_xlabel(SYMBOL[col_key])
        ax.set_ylabel(SYMBOL[row_key])
        ax.set_title(method)
        fig.colorbar(image, ax=ax, label="retained accuracy (%)")
    fig.suptitle(f"RA over learning-rate grids (log-spaced values), {benchmark}")
    fig.tight_layout()
    return Chart(fig, rows)
