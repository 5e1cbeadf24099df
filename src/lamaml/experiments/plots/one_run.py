"""Figures of one run: its accuracy matrix, and the series its analyses measured (fast weights,
learned rates). Their CSV rows name the run (benchmark, method, seed) with n = 1."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...errors import UserError
from .chart import Chart, Metrics, acc_matrix


def _row(run: Metrics, series: str, **values) -> dict:
    return {"benchmark": run["benchmark"], "series": series, "method": run["method"], "seed": run["seed"],
            "n": 1, **values}


def plot_matrix(run: Metrics) -> Chart:
    if "acc_matrix" not in run:
        raise UserError(f"plot matrix: run {run['method']} seed {run['seed']} keeps no accuracy matrix (a run restored "
                        f"from exported rows keeps only its metrics); plot a run folder or a run recorded here")
    matrix = acc_matrix(run)
    T = len(matrix)
    fig, ax = plt.subplots(figsize=(1.2 + 0.32 * T, 0.9 + 0.3 * T))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0, vmax=100)
    # the vision benchmarks' matrix is the validation split's (as the paper's), MNIST's the test split's
    split = "validation" if run.get("accuracy_split") == "val" else "test"
    fig.colorbar(image, ax=ax, label=f"{split} accuracy (%)")
    blank = "\n(blank: not evaluated; --set evaluate=all fills every entry)" if np.isnan(matrix).any() else ""
    ax.set_xlabel("evaluated task" + blank)
    ax.set_ylabel("after training on task")
    ticks = range(0, T, max(1, T // 20))
    ax.set_xticks(list(ticks), [str(t + 1) for t in ticks])
    ax.set_yticks(list(ticks), [str(t + 1) for t in ticks])
    ax.set_title(f"{run['method']} on {run['benchmark']}, seed {run['seed']}: "
                 f"RA {run['ra']:.1f}, BTI {run['bti']:+.1f}")
    rows = [_row(run, f"{split} accuracy (%)", after_task=i + 1, evaluated_task=j + 1, accuracy=matrix[i, j])
            for i in range(T) for j in range(matrix.shape[1]) if not np.isnan(matrix[i, j])]
    return Chart(fig, rows)


def plot_fast_weights(run: Metrics) -> Chart:
    """Blog figure 6: RA at the fast weights vs right after each meta-update."""
    points = run.get("series", {}).get("fast-weights")
    if not points:
        raise UserError("this run has no fast-weights series (run it with --analyses fast-weights)")
    updates = [p["update"] for p in points]
    fig, ax = plt.subplots(figsize=(9, 4))
    lines = {"ra_fast": ("at the fast weights", r"at the fast weights $\theta^j_k$ (during the inner updates)",
                         "tab:red"),
             "ra_after": ("right after the meta-update", r"right after the meta-update $\theta^{j+1}_0$", "tab:blue")}
    rows = []
    for key, (series, label, color) in lines.items():
        ax.plot(updates, [p[key] for p in points], color=color, label=label)
        rows += [_row(run, series, update=p["update"], task=p["task"] + 1, ra=p[key]) for p in points]
    for previous, point in zip(points, points[1:]):
        if point["task"] != previous["task"]:
            ax.axvline(point["update"], color="0.8", linewidth=0.8, zorder=0)
    every = updates[0] if updates else 0
    ax.set_xlabel(f"meta-update (measured every {every}; grey lines: new task)")
    ax.set_ylabel("retained accuracy on tasks seen so far (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{run['method']} on {run['benchmark']}, seed {run['seed']}: RA during vs after meta-updates")
    ax.legend(loc="lower right")
    return Chart(fig, rows)


def plot_lr_stats(run: Metrics) -> Chart:
    points = run.get("series", {}).get("lr-stats")
    if not points:
        raise UserError("this run has no lr-stats series (run it with --analyses lr-stats)")
    fig, (mean_ax, zero_ax) = plt.subplots(1, 2, figsize=(12, 4))
    by_parameter: dict[str, list[dict]] = {}
    for p in points:
        by_parameter.setdefault(p["parameter"], []).append(p)
    rows = []
    for name, group in sorted(by_parameter.items()):
        updates = [p["update"] for p in group]
        mean_ax.plot(updates, [p["mean"] for p in group], label=name)
        zero_ax.plot(updates, [100 * p["fraction_nonpositive"] for p in group], label=name)
        rows += [_row(run, name, update=p["update"], mean_rate=p["mean"],
                      percent_nonpositive=100 * p["fraction_nonpositive"]) for p in group]
    mean_ax.set_ylabel(r"mean learned rate $\alpha$")
    zero_ax.set_ylabel(r"rates at or below zero (%)")
    for ax in (mean_ax, zero_ax):
        ax.set_xlabel("meta-update")
        ax.legend(fontsize=8)
    fig.suptitle(f"per-parameter learning rates of {run['method']} on {run['benchmark']}, seed {run['seed']}")
    return Chart(fig, rows)
