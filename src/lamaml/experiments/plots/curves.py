"""Curves over tasks, one line per setting (seeds averaged, one std shaded), one panel per benchmark:
RA after each task, RA against training time (appendix F), gradient alignment (appendix D), and the
anytime accuracy curve (runs with ``eval_every``)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from matplotlib.ticker import MaxNLocator

from ...errors import UserError
from .chart import (Chart, Metrics, band, by_benchmark, grouped, panel_axes, point, ra_after_each_task,
                    require_ra_curves, styles)

Draw = Callable[[Any, Any, tuple], list[dict[str, Any]]]


def _curves(runs: list[Metrics], draw: Draw, title: str, xlabel: str, ylabel: str, *, integer_x: bool,
            missing: str | None = None, zero_line: bool = False) -> Chart:
    """One panel per benchmark, one series per group; ``draw(ax, group, style)`` draws one and returns its
    rows (none when the group's runs lack what it draws: ``missing`` then says what to do)."""
    panels = by_benchmark(grouped(runs))
    figure, axes = panel_axes(len(panels), 7, 4.5)
    rows = []
    for ax, (benchmark, panel) in zip(axes, panels.items()):
        for group, style in zip(panel, styles(panel)):
            rows += draw(ax, group, style)
        if zero_line:
            ax.axhline(0, color="0.5", linewidth=0.8)
        if integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_title(f"{title}, {benchmark}" if len(panels) == 1 else benchmark)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not rows and missing:
        raise UserError(missing)
    axes[0].set_ylabel(ylabel)
    if len(panels) > 1:
        figure.suptitle(title)
    return Chart(figure, rows)


def _ra_curve(ax, group, style):
    curves = [ra_after_each_task(r) for r in group.members]
    length = min(map(len, curves))
    tasks = np.arange(1, length + 1)
    mean, std = band(ax, tasks, [c[:length] for c in curves], group, style, "o")
    return [point(group, len(curves), tasks_learned=t + 1, ra_mean=mean[t], ra_std=None if std is None else std[t])
            for t in range(length)]


def plot_ra_curve(runs: list[Metrics]) -> Chart:
    require_ra_curves(runs, "ra-curve")
    return _curves(runs, _ra_curve, "RA after each task", "tasks learned", "retained accuracy (%)", integer_x=True)


def _ra_vs_time(ax, group, style):
    usable = [r for r in group.members if r.get("train_time_after_task_s")]
    if not usable:
        return []
    length = min(len(r["train_time_after_task_s"]) for r in usable)
    times = np.mean([r["train_time_after_task_s"][:length] for r in usable], axis=0)
    mean, std = band(ax, times, [ra_after_each_task(r)[:length] for r in usable], group, style, ".")
    ax.scatter(times[-1:], mean[-1:], color=ax.lines[-1].get_color(), s=60, zorder=3)
    return [point(group, len(usable), tasks_learned=t + 1, train_time_s=times[t], ra_mean=mean[t],
                  ra_std=None if std is None else std[t]) for t in range(length)]


def plot_ra_vs_time(runs: list[Metrics]) -> Chart:
    """Appendix F: RA after each task against the training time spent so far, per setting."""
    require_ra_curves([r for r in runs if r.get("train_time_after_task_s")], "ra-vs-time")
    return _curves(runs, _ra_vs_time, "RA versus wall-clock training time",
                   "training time (s, CPU; evaluation excluded)", "retained accuracy after each task (%)",
                   integer_x=False, missing="plot ra-vs-time: none of the selected runs recorded its training "
                   "time after each task (train_time_after_task_s; rerun them with this version)")


def _alignment(ax, group, style):
    series = [r["series"]["alignment"] for r in group.members if r.get("series", {}).get("alignment")]
    if not series:
        return []
    length = min(map(len, series))
    tasks = np.array([p["task"] + 1 for p in series[0][:length]])   # 1-based, as the paper
    mean, std = band(ax, tasks, [np.array([p["cosine"] for p in s[:length]]) for s in series], group, style, "o")
    return [point(group, len(series), task=int(tasks[i]), cosine_mean=mean[i],
                  cosine_std=None if std is None else std[i]) for i in range(length)]


def plot_alignment(runs: list[Metrics]) -> Chart:
    """Appendix D: mean cosine similarity among the old tasks' gradients as task t arrives."""
    return _curves(runs, _alignment, "inter-task gradient alignment",
                   "streaming task t (gradients of tasks 1..t-1, held-out samples)",
                   "mean pairwise cosine similarity", integer_x=True, zero_line=True,
                   missing="plot alignment: none of the selected runs has an alignment series "
                   "(run them with --analyses alignment)")


def _anytime(ax, group, style):
    curves = [r["anytime_curve"] for r in group.members if r.get("anytime_curve")]
    if not curves:
        return []
    length = min(map(len, curves))      # seeds of one setting evaluate at the same batches
    batches = np.array([p["batches"] for p in curves[0][:length]])
    mean, std = band(ax, batches, [np.array([p["accuracy"] for p in c[:length]]) for c in curves], group, style)
    ends = [i for i, p in enumerate(curves[0][:length]) if p["task_end"]]
    ax.scatter(batches[ends], mean[ends], color=ax.lines[-1].get_color(), s=12, zorder=3)
    return [point(group, len(curves), batches=int(batches[i]), task=curves[0][i]["task"] + 1,
                  task_end=curves[0][i]["task_end"], accuracy_mean=mean[i],
                  accuracy_std=None if std is None else std[i]) for i in range(length)]


def plot_anytime(runs: list[Metrics]) -> Chart:
    """Accuracy on the tasks seen so far during the stream (dots: task ends); AAA is the mean of a line."""
    return _curves(runs, _anytime, "anytime accuracy", "incoming batches", "accuracy on the tasks seen so far (%)",
                   integer_x=True, missing="plot anytime: none of the selected runs has an anytime curve "
                   "(run them with --eval-every K)")
