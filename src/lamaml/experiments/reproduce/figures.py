"""``lamaml reproduce figures``: the paper's appendix analyses on MNIST Rotations, as sweeps + plots.

The paper ran these on CIFAR-100 and never published the code; here they run on MNIST Rotations,
with every run recorded in the results store ``OUT/results.sqlite``, so a killed reproduction
resumes and runs shared with ``reproduce table1`` (same ``--out``) are reused.

* appendix D: gradient alignment among old tasks, C-MAML and La-MAML, seeds 0..S-1;
* appendix E: RA against each learning-rate hyperparameter, the others at their presets (figure 5),
  and over the 2-D grids of C-MAML and La-MAML (figure 6), values in [0.001, 0.3];
* appendix F: RA after each task against training time, the seven Table 1 methods;
* blog figure 6: RA at the fast weights and right after each meta-update, every 25 meta-updates;
  and the learned rates' statistics over time, from the same La-MAML run.

Each figure is written as PNG and PDF, with the numbers it draws beside them as CSV (plots.save).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ...errors import UserError
from ..plots import LR_GRIDS, LR_KEYS, plot, save
from ..sweep import SweepSpec, done_metrics, run_sweep
from .paper import TABLE1_METHODS
from .table1 import STORE_NAME, table1_spec

BENCHMARK = "mnist-rotations"
LR_VALUES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
ANALYSES = ["alignment", "fast-weights", "lr-stats"]


def figure_specs(seeds: int, lr_seeds: int, lr_values: list[float], tasks: int | None,
                 overrides: dict[str, Any]) -> dict[str, list[SweepSpec]]:
    common = {"evaluate": "seen", **overrides}
    lr = [SweepSpec(benchmarks=[BENCHMARK], methods=[method], seeds=list(range(lr_seeds)),
                    grid={key: lr_values}, set=common, tasks=tasks)
          for method, keys in LR_KEYS.items() for key in keys]
    grid = [SweepSpec(benchmarks=[BENCHMARK], methods=[method], seeds=list(range(lr_seeds)),
                      grid={row: lr_values, col: lr_values}, set=common, tasks=tasks)
            for method, (row, col) in LR_GRIDS.items()]
    return {
        "analyses": [SweepSpec(benchmarks=[BENCHMARK], methods=["c-maml", "la-maml"], seeds=list(range(seeds)),
                               set={**common, "analyses": ANALYSES}, tasks=tasks)],
        "time": table1_spec(seeds, tasks, overrides, benchmarks=[BENCHMARK], methods=TABLE1_METHODS),
        "lr": lr,
        "grid": grid,
    }


def _slow_first(config: dict[str, Any]) -> tuple[bool, bool]:
    return config["method"] != "mer", not config["analyses"]


def make_figures(out: Path, figures_dir: Path, specs: dict[str, list[SweepSpec]], jobs: int,
                 data_dir: str | None, run: bool = True) -> list[Path]:
    store = out / STORE_NAME
    if run:
        run_sweep([s for group in specs.values() for s in group], store, jobs, data_dir, order=_slow_first, project=True)
    runs = {name: done_metrics(store, group) for name, group in specs.items()}
    la_maml_seed0 = [r for r in runs["analyses"] if r["method"] == "la-maml" and r["seed"] == 0]
    wanted = [
        ("appendix-d-gradient-alignment", "alignment", runs["analyses"]),
        ("appendix-e-lr-robustness", "lr-robustness", runs["lr"]),
        ("appendix-e-lr-grid", "lr-grid", runs["grid"]),
        ("appendix-f-ra-vs-time", "ra-vs-time", runs["time"]),
        ("ra-after-each-task", "ra-curve", runs["time"]),
        ("figure-6-fast-weights", "fast-weights", la_maml_seed0),
        ("lr-stats", "lr-stats", la_maml_seed0),
        ("accuracy-matrix", "matrix", la_maml_seed0),
    ]
    written = []
    for name, kind, selected in wanted:
        if not selected:
            print(f"figures: {name}: no finished runs yet, skipped", file=sys.stderr)
            continue
        try:
            chart = plot(kind, selected)
        except UserError as error:      # e.g. runs recorded before they measured what this figure draws
            print(f"figures: {name}: {error}; skipped", file=sys.stderr)
            continue
        written += save(chart, figures_dir / name)
    return written
