"""The ``lamaml`` command line: run, config, list, sweep, runs, report, plot, reproduce.

Argument parsing and one thin handler per command; the work is done by the library
(``lamaml.experiments`` and the layers below), imported inside each handler so that
``lamaml --help`` stays fast and never imports torch. User mistakes end with one line on stderr
and exit status 2; a run that fails (a diverging loss) with one line and status 1; no
metrics.json is written for a run that did not finish.
"""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Sequence

from . import cli_parser


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
    from .engine.checkpoint import Every
    from .errors import RunFailed, UserError
    from .experiments.report import summary_table
    from .experiments.runs import check_writable, explain_failure, resume_command, resume_point, run_recorded
    resume = None
    if args.jobs is not None and (args.seeds is None or args.jobs < 1):
        raise UserError(f"--jobs {args.jobs}: the worker processes of --seeds, a count >= 1 with --seeds")
    if args.seeds is not None and (args.resume or args.checkpoint_every or args.dry_run or args.estimate):
        raise UserError("--seeds runs several seeds; --resume, --checkpoint-every, --dry-run and --estimate "
                        "work on one run: give --seed instead")
    if args.resume:
        if args.set or args.tasks is not None or args.out or args.analyses or args.setting or args.hparams or \
                args.scenario or args.eval_every is not None:
            raise UserError("--resume DIR continues the run as it was configured; --set, --tasks, --analyses, "
                            "--scenario, --eval-every and --out cannot change it")
        out = Path(args.resume)
        resume, warnings = resume_point(out)
        if args.estimate or args.dry_run:
            raise UserError("--estimate and --dry-run project a whole run from its start; for a checkpointed "
                            "run, `lamaml runs --store S` says where it stands and its training time left")
        for warning in warnings:
            print(f"lamaml: warning: {warning}", file=sys.stderr)
        config = RunConfig(**resume["config"])
        every = Every.parse(args.checkpoint_every or resume.get("checkpoint_every", "1"))
    else:
        overrides = _parse_sets(args.set)
        if args.analyses:
            overrides["analyses"] = [name.strip() for name in args.analyses.split(",") if name.strip()]
        if args.eval_every is not None and args.eval_every < 1:
            raise UserError(f"--eval-every {args.eval_every}: give K >= 1 (batches between two anytime evaluations)")
        for flag, key, value in (("--device", "device", args.device), ("--scenario", "scenario", args.scenario),
                                 ("--eval-every", "eval_every", args.eval_every)):
            if value is not None and key in overrides:
                raise UserError(f"{flag} and --set {key}=... both given: say it once")
            if value is not None:
                overrides[key] = value
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
    shown = []

    def show(metrics):      # before the results are written: a disk that is full then loses none
        print(summary_table(metrics), flush=True)
        shown.append(True)
    if args.seeds is not None:
        return _run_seeds(args, config, out, show)
    try:
        run_recorded(config, data_dir=args.data_dir, download=not args.no_download, out=out, store=args.store,
                     quiet=args.quiet, tensorboard=Path(args.tensorboard) if args.tensorboard else None,
                     checkpoint_every=every, resume=resume, show=show)
    except (KeyboardInterrupt, RunFailed) as error:
        command = resume_command(out, data_dir=args.data_dir, store=args.store, tensorboard=args.tensorboard,
                                 download=not args.no_download)
        if isinstance(error, KeyboardInterrupt) and command:
            print(f"lamaml: interrupted; continue from its last checkpoint with: {command}", file=sys.stderr)
            return 130
        if isinstance(error, KeyboardInterrupt) or not (command or shown):
            raise
        raise RunFailed(explain_failure(error, command, results_shown=bool(shown))) from None
    if out:
        print(f"results: {out / 'metrics.json'}")
    return 0


def _run_seeds(args, config, out: Path | None, show) -> int:
    """``lamaml run --seeds``: each seed's summary, then their mean +/- std."""
    from .experiments.seeds import combined_line, run_seeds_recorded, seed_folder, seed_processes
    from .experiments.sweep import parse_seeds
    seeds = parse_seeds(args.seeds)
    processes = seed_processes(config, len(seeds), args.jobs)
    metrics = run_seeds_recorded(config, seeds, data_dir=args.data_dir, download=not args.no_download, out=out,
                                 store=args.store, quiet=args.quiet, processes=processes,
                                 tensorboard=Path(args.tensorboard) if args.tensorboard else None, show=show,
                                 note=lambda line: print(f"lamaml: note: --seeds: {line}", file=sys.stderr, flush=True))
    print(combined_line(metrics))
    if out:
        print("results: " + ", ".join(str(seed_folder(out, seed) / "metrics.json") for seed in seeds))
    return 0


def cmd_runs(args) -> int:
    from .errors import UserError
    from .experiments.report import runs_table
    from .experiments.store import Store, open_store
    if args.import_files:
        if args.export or args.where:
            raise UserError("--import restores exported rows into the store; run --export or --where "
                            "as a command of its own after it")
        from .experiments.exported import import_runs
        store = Store(args.store)
        for path in args.import_files:
            added, there = import_runs(store, Path(path))
            print(f"{path}: {added} run(s) imported into {args.store}, {there} already done there")
        return 0
    rows = open_store(args.store).query(args.where)
    if args.export:
        from .atomic import write_text_atomic
        from .experiments.reproduce.tables import store_runs_csv
        done = [row for row in rows if row["status"] == "done"]
        write_text_atomic(Path(args.export), store_runs_csv(done))
        print(f"{args.export}: {len(done)} finished run(s) of {args.store}, one row each")
        return 0
    print(runs_table(rows))
    for line in _checkpointed(args.store, rows):
        print(line)
    return 0


def _checkpointed(store: str, rows: list[dict]) -> list[str]:
    """A line for each unfinished run of ``rows`` that left a checkpoint beside ``store``: where it
    stands, and whether a rerun of today's code resumes it (its configuration unchanged) or starts over."""
    from .config import RunConfig
    from .experiments.engines import checkpoint_progress
    from .experiments.store import config_hash
    lines, seen = [], set()
    for row in sorted(rows, key=lambda r: -r["id"]):    # a config's latest attempt speaks for its checkpoint
        config = json.loads(row["config"])
        if config_hash(config) in seen:
            continue
        seen.add(config_hash(config))
        if row["status"] == "done":     # its latest attempt finished: no checkpoint of it speaks for the run
            continue
        where = checkpoint_progress(store, config)
        if not where:
            continue
        try:
            current = config_hash(RunConfig(**config).model_dump()) == config_hash(config)
        except Exception:   # noqa: BLE001 - a configuration today's code refuses is not resumed either
            current = False
        lines.append(f"run {row['id']} ({row['benchmark']} {row['method']} seed {row['seed']}, {row['status']}): "
                     f"{where}" + ("" if current else " (an older configuration: today's code would start it over)"))
    return lines[::-1]


def cmd_sweep(args) -> int:
    from .config import parse_value
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
                        checkpoint_every=args.checkpoint_every, batch_seeds=args.batch_seeds,
                        gpus_per_run=args.gpus_per_run)
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
    out = Path(args.out or f"runs/{'table1' if args.table_name == 'figures' else args.table_name}")
    check_writable(out)
    overrides = _parse_sets(args.set)
    command = "lamaml " + " ".join(a for a in args.argv if a != "--table-only")
    if args.seeds_of and args.table_name != "table2":
        raise UserError(f"--seeds-of is table2's; {args.table_name} runs --seeds for every cell")
    if args.table and not args.table_only:
        _note_restorable(out, Path(args.table))
    if args.table_name == "table2":
        from .experiments.reproduce.table2 import reproduce_table2
        print(reproduce_table2(out, args.benchmarks, args.settings, args.methods, args.seeds, args.tasks, overrides,
                               args.jobs, args.engine, args.address, args.data_dir, args.checkpoint_every,
                               args.table, args.table_only, command, _seeds_of(args.seeds_of), args.gpus_per_run))
        return 0
    if args.table_name == "successors":
        from .experiments.reproduce.successors import reproduce_successors
        print(reproduce_successors(out, args.seeds, args.tasks, overrides, args.jobs, args.data_dir, args.benchmarks,
                                   args.methods, args.table, args.table_only, command))
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


def _note_restorable(out: Path, table: Path) -> None:
    """Say so where the table's committed runs file holds runs this store lacks (a lost store): one
    import restores them instead of training them again."""
    from .experiments.exported import restorable
    from .experiments.reproduce.tables import STORE_NAME, runs_csv_path
    missing = restorable(out / STORE_NAME, runs_csv_path(table))
    if missing:
        print(f"lamaml: note: {runs_csv_path(table)} holds {missing} finished run(s) that {out / STORE_NAME} lacks; "
              f"they run again unless restored first: lamaml runs --store {out / STORE_NAME} --import "
              f"{runs_csv_path(table)}", file=sys.stderr)


def _seeds_of(items: list[str]) -> dict[str, int]:
    """``--seeds-of la-maml=3`` (repeatable) as {method: count}."""
    from .errors import UserError
    counts = {}
    for item in items:
        method, sep, count = item.partition("=")
        if not sep or not method.strip() or not count.strip().isdigit():
            raise UserError(f"--seeds-of {item}: expected METHOD=N, e.g. la-maml=3")
        counts[method.strip()] = int(count)
    return counts


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


def build_parser():
    return cli_parser.build_parser({"config": cmd_config, "list": cmd_list, "plot": cmd_plot, "report": cmd_report,
                                    "reproduce": cmd_reproduce, "run": cmd_run, "runs": cmd_runs, "sweep": cmd_sweep})


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
    from .hardware import tune_allocator
    tune_allocator()
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
    except sqlite3.OperationalError as error:   # the results store on a full or read-only disk (a sweep's worker)
        if "full" not in str(error) and "readonly" not in str(error):
            raise
        print(f"lamaml: the results store cannot be written ({error}); finished runs are kept in it", file=sys.stderr)
        return 1
    except OSError as error:    # a full disk or a refused permission outside lamaml's writers: not a bug
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        print(f"lamaml: {error.filename or 'a file'}: {error.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
