"""The ``lamaml`` command line: run, config, list, sweep, runs, report, plot, reproduce.

Argument parsing and one thin handler per command; the work is done by the library
(``lamaml.experiments`` and the layers below), imported inside each handler so that
``lamaml --help`` stays fast and never imports torch. User mistakes end with one line on stderr
and exit status 2; a run that fails (a diverging loss) with one line and status 1; no
metrics.json is written for a run that did not finish.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_BENCHMARK, DEFAULT_METHOD = "mnist-rotations", "la-maml"


def parse_value(text: str):
    from .config import parse_value as parse
    return parse(text)


def _parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    from .errors import UserError
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair}: expected key=value, e.g. --set glances=5")
        overrides[key.strip()] = value.strip()
    return overrides


def cmd_run(args) -> int:
    from .config import RunConfig, resolve_config
    from .engine.checkpoint import Every, load_latest
    from .errors import RunFailed, UserError
    from .experiments.report import summary_table
    from .experiments.runs import check_writable, resume_command, run_recorded, run_status
    resume = None
    if args.resume:
        if args.set or args.tasks is not None or args.out or args.analyses or args.setting or args.hparams:
            raise UserError("--resume DIR continues the run as it was configured; "
                            "--set, --tasks, --analyses and --out cannot change it")
        out = Path(args.resume)
        if run_status(out).get("status") == "done":     # resuming would overwrite its metrics with a stub
            raise UserError(f"--resume {out}: the run in {out} is already finished; "
                            f"its metrics are in {out / 'metrics.json'}")
        resume, warnings = load_latest(out)
        for warning in warnings:
            print(f"lamaml: warning: {warning}", file=sys.stderr)
        config = RunConfig(**resume["config"])
        every = Every.parse(args.checkpoint_every or resume.get("checkpoint_every", "1"))
    else:
        overrides = _parse_sets(args.set)
        if args.analyses:
            overrides["analyses"] = [name.strip() for name in args.analyses.split(",") if name.strip()]
        if args.device:
            overrides["device"] = args.device
        config = resolve_config(args.benchmark, args.method, overrides, seed=args.seed, tasks=args.tasks,
                                setting=args.setting, hparams=args.hparams)
        out = Path(args.out) if args.out else None
        every = Every.parse(args.checkpoint_every) if args.checkpoint_every else None
        if every and out is None:
            raise UserError("--checkpoint-every needs --out DIR, where the checkpoints go")
    if out:
        check_writable(out)
    _note_preset(config)
    from .methods import method_class
    if every and method_class(config.method).joint:
        raise UserError(f"--checkpoint-every: {config.method} trains on all tasks at once; "
                        f"checkpoints inside its run are not supported yet")
    if args.estimate:
        from .engine.estimate import estimate
        print("\n".join(estimate(config, args.data_dir, download=not args.no_download).lines()))
        return 0
    if args.dry_run:
        from .experiments.runs import dry_run
        print(json.dumps(dry_run(config, data_dir=args.data_dir, download=not args.no_download, store=args.store,
                                 tensorboard=Path(args.tensorboard) if args.tensorboard else None), indent=2))
        return 0
    try:
        metrics = run_recorded(config, data_dir=args.data_dir, download=not args.no_download, out=out,
                               store=args.store, quiet=args.quiet,
                               tensorboard=Path(args.tensorboard) if args.tensorboard else None,
                               checkpoint_every=every, resume=resume)
    except (KeyboardInterrupt, RunFailed) as error:
        command = resume_command(out, data_dir=args.data_dir, store=args.store, tensorboard=args.tensorboard,
                                 download=not args.no_download)
        if command is None:
            raise
        if isinstance(error, KeyboardInterrupt):
            print(f"lamaml: interrupted; continue from its last checkpoint with: {command}", file=sys.stderr)
            return 130
        raise RunFailed(f"{error}; its last checkpoint, from before the failure, is kept: {command}") from None
    print(summary_table(metrics))
    if out:
        print(f"results: {out / 'metrics.json'}")
    return 0


def cmd_runs(args) -> int:
    from .experiments.report import runs_table
    from .experiments.store import open_store
    print(runs_table(open_store(args.store).query(args.where)))
    return 0


def cmd_sweep(args) -> int:
    from .errors import UserError
    from .experiments.sweep import load_spec, parse_seeds, run_sweep, validate_spec
    if not args.file and not (args.benchmarks and args.methods):
        raise UserError("sweep: give --benchmarks and --methods, or a --file")
    grid = {}
    for item in args.grid:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UserError(f"--grid {item}: expected key=v1,v2,...")
        grid[key.strip()] = [parse_value(v) for v in values.split(",")]
    sets = _parse_sets(args.set)
    both = sorted(set(grid) & set(sets))
    if both:
        raise UserError(f"--grid and --set both give {', '.join(both)}: sweep it or fix it, not both")
    # A flag given with --file replaces that part of the file (see the --file help)
    raw = load_spec(Path(args.file)).model_dump() if args.file else {}
    if args.benchmarks:
        raw["benchmarks"] = args.benchmarks.split(",")
    if args.methods:
        raw["methods"] = args.methods.split(",")
    if args.seeds is not None:
        raw["seeds"] = parse_seeds(args.seeds)
    if args.tasks is not None:
        raw["tasks"] = args.tasks
    raw["grid"] = {**{k: v for k, v in raw.get("grid", {}).items() if k not in sets}, **grid}
    raw["set"] = {**{k: v for k, v in raw.get("set", {}).items() if k not in grid}, **sets}
    spec = validate_spec(raw, args.file or "sweep")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be >= 1")
    results = run_sweep(spec, Path(args.store), args.jobs, args.data_dir, args.engine, args.address,
                        tensorboard=Path(args.tensorboard) if args.tensorboard else None, project=True,
                        checkpoint_every=args.checkpoint_every)
    failed, held = ([r for r in results if r["status"] == s] for s in ("failed", "skipped"))  # held by another sweep
    note = f", {len(held)} skipped (done or running elsewhere)" if held else ""
    print(f"sweep: {len(results) - len(failed) - len(held)} run(s) done, {len(failed)} failed{note}; store {args.store}")
    return 1 if failed else 0


def cmd_report(args) -> int:
    from .experiments.report import report_store
    print(report_store(args.store, args.where, args.format, args.out), end="")
    return 0


def cmd_plot(args) -> int:
    from .experiments.plots import plot, save
    from .experiments.runs import load_runs
    figure = plot(args.kind, load_runs(args.runs, args.store, args.where))
    for path in save(figure, Path(args.out)):
        print(f"wrote {path}")
    return 0


def cmd_list(args) -> int:
    from .experiments.catalog import catalog
    print(catalog())
    return 0


def _note_preset(config) -> None:
    from .config.schema import preset_note
    note = preset_note(config.benchmark, config.method, config.setting, config.hparams)
    if note:
        print(f"lamaml: note: {note}", file=sys.stderr)


def cmd_config(args) -> int:
    """The fully resolved configuration of a run, as JSON: what ``lamaml run`` with the same options uses."""
    from .config import resolve_config
    config = resolve_config(args.benchmark, args.method, _parse_sets(args.set), seed=args.seed, tasks=args.tasks,
                            setting=args.setting, hparams=args.hparams)
    _note_preset(config)
    print(json.dumps(config.model_dump(), indent=2))
    return 0


def cmd_reproduce(args) -> int:
    from .errors import UserError
    from .experiments.reproduce.table1 import collect, run_table1, runs_csv_path, table1_spec, write_table1
    from .experiments.runs import check_writable
    if args.seeds < 1 or args.jobs < 1:
        raise UserError(f"--seeds {args.seeds} --jobs {args.jobs}: both must be >= 1")
    out = Path(args.out or f"runs/{'table2' if args.table_name == 'table2' else 'table1'}")
    check_writable(out)
    overrides = _parse_sets(args.set)
    command = "lamaml " + " ".join(a for a in args.argv if a != "--table-only")
    if args.table_name == "table2":
        from .experiments.reproduce.table2 import reproduce_table2
        print(reproduce_table2(out, args.benchmarks, args.settings, args.methods, args.seeds, args.tasks, overrides,
                               args.jobs, args.engine, args.address, args.data_dir, args.checkpoint_every,
                               args.table, args.table_only, command))
        return 0
    if overrides:   # validate once, before any worker starts
        from .config import resolve_config
        resolve_config("mnist-rotations", "la-maml", overrides)
    if args.table_name == "figures":
        return _reproduce_figures(args, out, overrides)
    spec = table1_spec(args.seeds, args.tasks, overrides)
    if not args.table_only:
        run_table1(out, spec, args.jobs, args.data_dir)
    targets = [out / "table1.md"] + ([Path(args.table)] if args.table else [])
    table = write_table1(collect(out, spec), args.seeds, command, targets, rebuilt=args.table_only)
    print(table)
    print("table: " + ", ".join(map(str, targets)) + "; its runs: " + ", ".join(str(runs_csv_path(t)) for t in targets))
    return 0


def _reproduce_figures(args, out: Path, overrides: dict) -> int:
    from .errors import UserError
    from .experiments.reproduce.figures import LR_VALUES, figure_specs, make_figures
    try:
        values = [float(v) for v in args.lr_values.split(",")] if args.lr_values else LR_VALUES
    except ValueError:
        raise UserError(f"--lr-values {args.lr_values}: expected numbers separated by commas") from None
    if not values or any(not 0 < v < 10 for v in values):
        raise UserError(f"--lr-values {args.lr_values}: each value must be in (0, 10)")
    if args.lr_seeds < 1:
        raise UserError(f"--lr-seeds {args.lr_seeds}: must be >= 1")
    specs = figure_specs(args.seeds, args.lr_seeds, values, args.tasks, overrides)
    figures_dir = Path(args.figures) if args.figures else out / "figures"
    for path in make_figures(out, figures_dir, specs, args.jobs, args.data_dir, run=not args.table_only):
        print(f"wrote {path}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lamaml", description="Online continual learning with La-MAML: "
                                     "run a method on a benchmark, sweep, report and reproduce the paper.")
    from .version import __version__
    parser.add_argument("--version", action="version", version=f"lamaml {__version__}")
    commands = parser.add_subparsers(dest="command")
    run_p = commands.add_parser("run", help="train and evaluate one method on one benchmark")
    run_p.add_argument("--benchmark", default=DEFAULT_BENCHMARK, help="the task stream (lamaml list shows them)")
    run_p.add_argument("--method", default=DEFAULT_METHOD, help="the learner (lamaml list shows them)")
    run_p.add_argument("--seed", type=int, default=0, help="seeds the tasks, the model, the stream order and the method")
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
    run_p.add_argument("--analyses", default=None, metavar="A,B",
                       help="measure series for the paper's analyses: alignment, fast-weights, lr-stats")
    run_p.add_argument("--tensorboard", default=None, metavar="DIR", help="also log to TensorBoard, in a subfolder "
                       "of DIR for this run (offline; pip install 'lamaml[tensorboard]')")
    run_p.add_argument("--checkpoint-every", default=None, metavar="N|Nm|Nb",
                       help="checkpoint into --out every N tasks, N minutes or N batches")
    run_p.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run whose checkpoints are in DIR (its config is reused)")
    run_p.set_defaults(handler=cmd_run)
    rep_p = commands.add_parser("reproduce", help="regenerate the paper's MNIST table (table1), its vision table "
                                "(table2) or its appendix analyses on MNIST Rotations (figures)")
    rep_p.add_argument("table_name", choices=["table1", "table2", "figures"], help="what to reproduce")
    for flag, what in (("--benchmarks", "cifar100,tinyimagenet"), ("--settings", "single,multi"), ("--methods", "the paper's 11")):
        rep_p.add_argument(flag, default=None, help=f"table2: comma-separated (default: {what})")
    rep_p.add_argument("--engine", choices=["local", "ray"], default="local", help="table2: as lamaml sweep's")
    rep_p.add_argument("--address", default=None, metavar="HOST:PORT", help="table2: a Ray cluster (engine ray)")
    rep_p.add_argument("--checkpoint-every", default=None, metavar="Nm|Nb|N|off", help="table2: each run checkpoints "
                       "beside the store this often and a killed one resumes there (default: 10m)")
    rep_p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per cell")
    rep_p.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="parallel runs (default: the CPU count)")
    rep_p.add_argument("--out", default=None, help="run folder; finished runs are reused (default: runs/table1, "
                       "table2: runs/table2)")
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
    rep_p.set_defaults(handler=cmd_reproduce)
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
    sweep_p.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LAMAML_DATA or ./data)")
    sweep_p.add_argument("--tensorboard", default=None, metavar="DIR",
                         help="log every run to TensorBoard, each in a subfolder of DIR (pip install 'lamaml[tensorboard]')")
    sweep_p.add_argument("--checkpoint-every", default=None, metavar="Nm|Nb|N", help="each run checkpoints beside the "
                         "store this often (minutes, batches, tasks); a killed one resumes there on the rerun")
    sweep_p.set_defaults(handler=cmd_sweep)
    report_p = commands.add_parser("report", help="mean +/- std over seeds of the runs in a store")
    report_p.add_argument("--store", default="runs/lamaml.sqlite", metavar="FILE", help="the results store to read")
    report_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE",
                          help="only runs matching, e.g. method=la-maml, ra>=75, config.params.alpha_init=0.1 "
                          "(repeatable; OP one of != >= <= = > <)")
    report_p.add_argument("--format", choices=["table", "markdown", "csv", "latex"], default="table",
                          help="how the report is written")
    report_p.add_argument("--out", default=None, metavar="FILE", help="also write the report to this file")
    report_p.set_defaults(handler=cmd_report)
    plot_p = commands.add_parser("plot", help="figures (PNG, PDF, and the numbers drawn as CSV) from run folders "
                                 "or a results store")
    plot_p.add_argument("kind", choices=["matrix", "ra-curve", "ra-vs-time", "lr-robustness", "lr-grid",
                                         "alignment", "fast-weights", "lr-stats"],
                        help="matrix, fast-weights, lr-stats: one run; the others: many runs, grouped as "
                        "`lamaml report` groups them (one line per setting, seeds averaged; one panel per benchmark)")
    plot_p.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="run folders (their metrics.json)")
    plot_p.add_argument("--store", default=None, metavar="FILE", help="finished runs of a results store")
    plot_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE", help="filter store runs")
    plot_p.add_argument("--out", required=True, metavar="PATH",
                        help="figure path; .png, .pdf and .csv (one row per plotted point) are written")
    plot_p.set_defaults(handler=cmd_plot)
    runs_p = commands.add_parser("runs", help="list the runs of a results store")
    runs_p.add_argument("--store", default="runs/lamaml.sqlite", metavar="FILE", help="the results store to read")
    runs_p.add_argument("--where", action="append", default=[], metavar="KEY OP VALUE",
                        help="filter, e.g. method=la-maml, ra>=75, config.glances=5, config.params.alpha_init=0.1 "
                        "(repeatable; OP one of != >= <= = > <)")
    runs_p.set_defaults(handler=cmd_runs)
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
    config_p.set_defaults(handler=cmd_config)
    list_p = commands.add_parser("list", help="benchmarks, methods and their defaults")
    list_p.set_defaults(handler=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:        # a bare `lamaml` explains itself; it never starts a run
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:    # options without a command: those of `lamaml run`
        args = parser.parse_args(["run", *argv])
    args.argv = argv
    from .errors import LamamlError
    try:
        status = args.handler(args)
        sys.stdout.flush()      # a closed pipe shows here, where it is caught, not at interpreter exit
        return status
    except LamamlError as error:
        print(f"lamaml: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("lamaml: interrupted; no results written", file=sys.stderr)
        return 130
    except BrokenPipeError:     # e.g. `lamaml list | head -1`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so the interpreter's final flush cannot fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
