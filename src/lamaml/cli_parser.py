"""The ``lamaml`` command line's arguments: every command, its options and their help.

Kept apart from the handlers (cli.py) so each file reads in one sitting; it imports nothing heavy,
so ``lamaml --help`` stays fast and never imports torch.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable

DEFAULT_BENCHMARK, DEFAULT_METHOD = "mnist-rotations", "la-maml"


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default     # 0 is worth showing; None, False (a flag) and [] are not; a help
        # that names its default itself (one computed at run time, e.g. $LAMAML_DATA) keeps its words
        if "default" in text or not action.option_strings or default is None or default is False \
                or default == [] or default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands (created with its class) all show defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(handlers: dict[str, Callable]) -> argparse.ArgumentParser:
    """The parser of every command; ``handlers`` maps each command to its handler in cli.py."""
    parser = _Parser(prog="lamaml", description="Online continual learning with La-MAML: "
                                     "run a method on a benchmark, sweep, report and reproduce the paper.")
    from .version import __version__
    parser.add_argument("--version", action="version", version=f"lamaml {__version__}")
    commands = parser.add_subparsers(dest="command")
    run_p = commands.add_parser("run", help="train and evaluate one method on one benchmark")
    run_p.add_argument("--benchmark", default=DEFAULT_BENCHMARK, help="the task stream (lamaml list shows them)")
    run_p.add_argument("--method", default=DEFAULT_METHOD, help="the learner (lamaml list shows them)")
    run_p.add_argument("--seed", type=int, default=0, help="seeds the tasks, the model, the stream order and the method")
    run_p.add_argument("--seeds", default=None, metavar="0-4|0,2,5",
                       help="run this config once per seed (replaces --seed): La-MAML-family runs on the closed-form "
                       "path train every seed as one batched computation, others one after another; each seed "
                       "is recorded as its own run (--out DIR: DIR/seed<k>/)")
    run_p.add_argument("--jobs", type=int, default=None, help="--seeds: worker processes, each training a group "
                       "of the seeds (default: one per core for an MLP on the CPU, which trains on one thread; "
                       "one otherwise)")
    run_p.add_argument("--tasks", type=int, default=None, help="keep only the first N tasks")
    run_p.add_argument("--setting", choices=["single", "multi"], default=None,
                       help="the paper's single-pass (glances) or multi-pass (10 epochs) protocol (default: single)")
    run_p.add_argument("--hparams", choices=["scripts", "appendix"], default=None,
                       help="the authors' scripts' hyperparameters or the paper appendix's tables (default: scripts)")
    run_p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="where to compute (default: cpu)")
    run_p.add_argument("--out", default=None, metavar="DIR", help="write DIR/metrics.json and DIR/status.json "
                       "(and checkpoints, with --checkpoint-every)")
    run_p.add_argument("--data-dir", default=None, help="folder holding mnist/, cifar-100-python(.tar.gz), tiny-imagenet-200(.zip) (default: $LAMAML_DATA or ./data)")
    run_p.add_argument("--no-download", action="store_true", help="never fetch missing data files")
    run_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config field or hyperparameter (repeatable)")
    run_p.add_argument("--quiet", action="store_true", help="no progress bar (without a terminal: no progress "
                       "line per task on stderr)")
    run_p.add_argument("--store", default=None, metavar="FILE", help="record the run in this SQLite results store")
    run_p.add_argument("--dry-run", action="store_true", help="check what the run would check before training "
                       "(config, device, data, method, store), print the config and the projected time, stop")
    run_p.add_argument("--estimate", action="store_true", help="time a few updates and one evaluation, print the "
                       "projected training, evaluation and total time of the full run, stop")
    run_p.add_argument("--scenario", choices=["task-il", "class-il", "domain-il"], default=None,
                       help="task-il: task id at test, each task's classes; class-il: one head over every class "
                       "seen, no task id; domain-il: the same classes in every task (default: the benchmark's own)")
    run_p.add_argument("--eval-every", type=int, default=None, metavar="K",
                       help="anytime evaluation every K incoming batches on the tasks seen so far: AAA, WC-ACC and "
                       "the curve in metrics.json (default: off)")
    run_p.add_argument("--analyses", default=None, metavar="A,B",
                       help="measure series for the paper's analyses: alignment, fast-weights, lr-stats")
    run_p.add_argument("--tensorboard", default=None, metavar="DIR", help="also log to TensorBoard, in a subfolder "
                       "of DIR for this run (offline; pip install 'lamaml[tensorboard]')")
    run_p.add_argument("--checkpoint-every", default=None, metavar="N|Nm|Nb",
                       help="checkpoint into --out every N tasks, N minutes or N batches")
    run_p.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run whose checkpoints are in DIR (its config is reused)")
    run_p.set_defaults(handler=handlers["run"])
    rep_p = commands.add_parser("reproduce", help="regenerate the paper's MNIST table (table1), its vision table "
                                "(table2), its appendix analyses on MNIST Rotations (figures), or La-MAML beside "
                                "VR-MCL and replay baselines on MNIST (successors)")
    rep_p.add_argument("table_name", choices=["table1", "table2", "figures", "successors"], help="what to reproduce")
    for flag, what in (("--benchmarks", "table2: cifar100,tinyimagenet; successors: the 3 MNIST and split-mnist"),
                       ("--settings", "single,multi"),
                       ("--methods", "table2: the paper's 11; successors: config/paper/successors.yaml's 7")):
        scope = "table2" if flag == "--settings" else "table2, successors"
        rep_p.add_argument(flag, default=None, help=f"{scope}: comma-separated (default: {what})")
    rep_p.add_argument("--engine", choices=["local", "ray"], default="local", help="table2: as lamaml sweep's")
    rep_p.add_argument("--address", default=None, metavar="HOST:PORT", help="table2: a Ray cluster (engine ray)")
    rep_p.add_argument("--gpus-per-run", type=float, default=1.0, metavar="X", help="table2: as lamaml sweep's")
    rep_p.add_argument("--checkpoint-every", default=None, metavar="Nm|Nb|N|off", help="table2: each run checkpoints "
                       "beside the store this often and a killed one resumes there (default: 10m)")
    rep_p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per cell")
    rep_p.add_argument("--seeds-of", action="append", default=[], metavar="METHOD=N",
                       help="table2: this method's cells run seeds 0..N-1 instead (repeatable), e.g. --seeds 1 "
                       "--seeds-of la-maml=3")
    rep_p.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="parallel runs (default: the CPU count)")
    rep_p.add_argument("--out", default=None, help="run folder; finished runs are reused (default: runs/<what>: "
                       "runs/table1, runs/table2, ...)")
    rep_p.add_argument("--table", default=None, help="also write the Markdown table here")
    rep_p.add_argument("--table-only", action="store_true", help="rebuild the table (or figures) from finished runs")
    rep_p.add_argument("--figures", default=None, metavar="DIR", help="figures: where the PNG and PDF files go "
                       "(default: OUT/figures)")
    rep_p.add_argument("--lr-seeds", type=int, default=1, help="figures: seeds per learning-rate setting")
    rep_p.add_argument("--lr-values", default=None, metavar="V1,V2",
                       help="figures: learning-rate values swept (default: 0.001,0.003,0.01,0.03,0.1,0.3)")
    rep_p.add_argument("--data-dir", default=None, help="folder holding mnist/ (table2: cifar-100-python(.tar.gz), "
                       "tiny-imagenet-200(.zip)) (default: $LAMAML_DATA or ./data)")
    rep_p.add_argument("--tasks", type=int, default=None, help="first N tasks only (smoke runs)")
    rep_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override for every run, e.g. samples_per_task=50 (smoke runs)")
    rep_p.set_defaults(handler=handlers["reproduce"])
    sweep_p = commands.add_parser("sweep", help="run benchmarks x methods x seeds x a grid, skipping finished runs")
    sweep_p.add_argument("--file", default=None,
                         help="a YAML sweep file (benchmarks, methods, seeds, grid, set, tasks); flags given with "
                         "it win: --benchmarks, --methods, --seeds and --tasks replace the file's, --grid KEY and "
                         "--set KEY replace the file's grid or set entry for KEY")
    sweep_p.add_argument("--benchmarks", default=None, help="comma-separated")
    sweep_p.add_argument("--methods", default=None, help="comma-separated")
    sweep_p.add_argument("--seeds", default=None, help="a range 0-4 or a list 0,2,5 (default 0)")
    sweep_p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                         help="values to sweep; KEY is a run setting or a hyperparameter of at least one of the "
                         "methods (the others run without it)")
    sweep_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed override")
    sweep_p.add_argument("--tasks", type=int, default=None, help="keep only the first N tasks of each benchmark")
    sweep_p.add_argument("--store", default="runs/lamaml.sqlite", metavar="FILE",
                         help="the results store; runs already done there are skipped")
    sweep_p.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1),
                         help="runs at once (default: the CPU count)")
    sweep_p.add_argument("--engine", choices=["local", "ray"], default="local",
                         help="local processes, or Ray (pip install 'lamaml[ray]')")
    sweep_p.add_argument("--address", default=None, metavar="HOST:PORT", help="a Ray cluster (engine ray); one "
                         "with token authentication needs RAY_AUTH_MODE=token and its token")
    sweep_p.add_argument("--gpus-per-run", type=float, default=1.0, metavar="X", help="engine ray: the GPUs each "
                         "run on CUDA (device=cuda, or auto on a cluster with GPUs) asks of Ray: a share (0.25: four "
                         "runs per GPU) or a whole number (default: 1)")
    sweep_p.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LAMAML_DATA or ./data)")
    sweep_p.add_argument("--tensorboard", default=None, metavar="DIR",
                         help="log every run to TensorBoard, each in a subfolder of DIR (pip install 'lamaml[tensorboard]')")
    sweep_p.add_argument("--checkpoint-every", default=None, metavar="Nm|Nb|N", help="each run checkpoints beside the "
                         "store this often (minutes, batches, tasks); a killed one resumes there on the rerun")
    sweep_p.add_argument("--batch-seeds", action="store_true", help="train the seeds of each configuration as one "
                         "batched computation where the method allows (as lamaml run --seeds: La-MAML-family runs "
                         "on the closed-form path); each seed is still its own run in the store")
    sweep_p.set_defaults(handler=handlers["sweep"])
    report_p = commands.add_parser("report", help="mean +/- std over seeds of the runs in a store")
    report_p.add_argument("--store", default="runs/lamaml.sqlite", metavar="FILE", help="the results store to read")
    report_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE",
                          help="only runs matching, e.g. method=la-maml, ra>=75, metrics.aaa>60, config.params.alpha_init=0.1 "
                          "(repeatable; OP one of != >= <= = > <)")
    report_p.add_argument("--format", choices=["table", "markdown", "csv", "latex"], default="table",
                          help="how the report is written")
    report_p.add_argument("--out", default=None, metavar="FILE", help="also write the report to this file")
    report_p.set_defaults(handler=handlers["report"])
    plot_p = commands.add_parser("plot", help="figures (PNG, PDF, and the numbers drawn as CSV) from run folders "
                                 "or a results store")
    plot_p.add_argument("kind", choices=["matrix", "ra-curve", "ra-vs-time", "anytime", "lr-robustness", "lr-grid",
                                         "alignment", "fast-weights", "lr-stats"],
                        help="matrix, fast-weights, lr-stats: one run; the others: many runs, grouped as "
                        "`lamaml report` groups them (one line per setting, seeds averaged; one panel per benchmark)")
    plot_p.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="run folders (their metrics.json)")
    plot_p.add_argument("--store", default=None, metavar="FILE", help="finished runs of a results store")
    plot_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE", help="filter store runs")
    plot_p.add_argument("--out", required=True, metavar="PATH",
                        help="figure path; .png, .pdf and .csv (one row per plotted point) are written")
    plot_p.set_defaults(handler=handlers["plot"])
    runs_p = commands.add_parser("runs", help="list the runs of a results store")
    runs_p.add_argument("--store", default="runs/lamaml.sqlite", metavar="FILE", help="the results store to read")
    runs_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE",
                        help="filter, e.g. method=la-maml, ra>=75, metrics.fwt>0, config.glances=5, config.params.alpha_init=0.1 "
                        "(repeatable; OP one of != >= <= = > <)")
    runs_p.add_argument("--import", dest="import_files", action="append", default=[], metavar="RUNS.csv",
                        help="record the runs of a table's exported runs file (docs/results/*-runs.csv) as done "
                        "in --store (created if absent), so reproduce and sweep skip them (repeatable)")
    runs_p.add_argument("--export", default=None, metavar="RUNS.csv",
                        help="write the finished runs (those --where selects) as CSV, one row per run with its "
                        "metrics, commit, config hash and settings; --import reads it back")
    runs_p.set_defaults(handler=handlers["runs"])
    config_p = commands.add_parser("config", help="print the fully resolved config of a run as JSON (no data needed)")
    config_p.add_argument("--benchmark", default=DEFAULT_BENCHMARK, help="the task stream (lamaml list shows them)")
    config_p.add_argument("--method", default=DEFAULT_METHOD, help="the learner (lamaml list shows them)")
    config_p.add_argument("--setting", choices=["single", "multi"], default=None,
                          help="the paper's single-pass or multi-pass protocol (default: single)")
    config_p.add_argument("--hparams", choices=["scripts", "appendix"], default=None,
                          help="the authors' scripts' hyperparameters or the appendix's (default: scripts)")
    config_p.add_argument("--seed", type=int, default=0, help="seeds the tasks, the model, the stream order and the method")
    config_p.add_argument("--tasks", type=int, default=None, help="keep only the first N tasks")
    config_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override any config field or hyperparameter (repeatable)")
    config_p.set_defaults(handler=handlers["config"])
    list_p = commands.add_parser("list", help="benchmarks, methods and their defaults")
    list_p.set_defaults(handler=handlers["list"])
    return parser
