"""``lamaml plot``: the figures a person would rather look at than read, from runs' metrics.

Every function takes metrics dicts (the content of ``metrics.json``, or of the store's metrics
column) and returns a ``Chart``: the matplotlib Figure and the numbers it draws, one row per
plotted point naming its series, the settings of its runs and n. ``save`` writes PNG, PDF and CSV.

Runs are grouped as ``lamaml report`` groups them (``experiments.groups``): by benchmark, method
and every setting but the seed. The seeds of a group are averaged, one sample std shaded; the
legend names the settings that differ between the series of a method (``la-maml alpha_init=0.3
(n=2)``); each benchmark gets its own panel, and a figure that has no room for panels (lr-robustness,
lr-grid) refuses runs of several benchmarks, naming them.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")   # files only: no display, no GUI toolkit

from ...errors import UserError  # noqa: E402
from .chart import Chart, Metrics, ra_after_each_task, save  # noqa: E402
from .curves import plot_alignment, plot_anytime, plot_ra_curve, plot_ra_vs_time  # noqa: E402
from .learning_rates import LR_GRIDS, LR_KEYS, plot_lr_grid, plot_lr_robustness  # noqa: E402
from .one_run import plot_fast_weights, plot_lr_stats, plot_matrix  # noqa: E402

KINDS = ("matrix", "ra-curve", "ra-vs-time", "anytime", "lr-robustness", "lr-grid", "alignment", "fast-weights",
         "lr-stats")
SINGLE = {"matrix": plot_matrix, "fast-weights": plot_fast_weights, "lr-stats": plot_lr_stats}
MANY = {"ra-curve": plot_ra_curve, "ra-vs-time": plot_ra_vs_time, "lr-robustness": plot_lr_robustness,
        "lr-grid": plot_lr_grid, "alignment": plot_alignment, "anytime": plot_anytime}


def plot(kind: str, runs: list[Metrics]) -> Chart:
    if kind in SINGLE:
        if len(runs) != 1:
            raise UserError(f"plot {kind} shows one run; {len(runs)} were selected (narrow --where)")
        return SINGLE[kind](runs[0])
    return MANY[kind](runs)


__all__ = ["Chart", "KINDS", "LR_GRIDS", "LR_KEYS", "plot", "ra_after_each_task", "save"]
