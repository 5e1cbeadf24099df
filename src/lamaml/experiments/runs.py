"""One run recorded as ``lamaml run`` records it, and finished runs' metrics read back.

``run_recorded`` runs a config and keeps its records (``record.py``): a row in a results store
(``running``, then ``done`` with the metrics or ``failed`` with the error) and, in a run folder,
``metrics.json`` and ``status.json`` (``running``, ``done``, or ``failed`` with the error and
whether a checkpoint was kept). No ``metrics.json`` is written for a run that did not finish.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import RunFailed, UserError
from .groups import latest_per_run
from .progress import RunPlugins
from .record import METRICS, RunRecord, run_status
from .store import Store, open_store

__all__ = ["check_writable", "dry_run", "explain_failure", "load_runs", "resume_command", "resume_point",
           "run_recorded", "run_status"]


def run_recorded(config, *, data_dir: str | Path | None = None, download: bool = True, out: Path | None = None,
                 store: str | Path | None = None, quiet: bool = True, tensorboard: Path | None = None,
                 checkpoint_every=None, resume: dict | None = None,
                 show: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``config`` (a RunConfig) and return its metrics, recorded in ``store`` and ``out`` when given.

    ``quiet=False`` shows a progress bar; ``tensorboard`` also logs there; ``checkpoint_every``
    (an ``engine.checkpoint.Every``) checkpoints into ``out``; ``resume`` (a loaded checkpoint of
    this config) continues a run, recorded in the store row it was first recorded in (see
    ``record.py``). ``show(metrics)`` is called as soon as the run is done, before anything is
    written, so a disk that fills up at the end loses nothing the user has not seen. A record
    that cannot be written raises ``WriteFailed`` naming it and what was kept.
    """
    from ..engine import run
    record = RunRecord.open(config.model_dump(), out, store, resumed=resume is not None)
    plugins = RunPlugins(quiet, tensorboard)
    try:
        metrics = run(config, data_dir=data_dir, download=download, plugins=plugins, checkpoint_dir=out,
                      checkpoint_every=checkpoint_every, resume=resume)
    except (RunFailed, UserError, KeyboardInterrupt) as error:
        record.failed(str(error) or "interrupted")
        raise
    if show:
        show(metrics)
    plugins.finish(metrics)
    record.done(metrics)
    return metrics


def explain_failure(error: BaseException, resume_with: str | None, *, results_shown: bool) -> str:
    """The one line for a run that failed: what went wrong, then what is kept."""
    parts = [str(error)]
    if results_shown:
        parts.append("the results are shown above")
    if resume_with:
        when = "" if results_shown else ", from before the failure,"
        parts.append(f"its last checkpoint{when} is kept: {resume_with}")
    return "; ".join(parts)


def resume_point(out: Path) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint ``lamaml run --resume out`` continues from, and warnings about bad ones skipped."""
    from ..engine.checkpoint import load_latest
    if run_status(out).get("status") == "done":     # resuming would overwrite its metrics with a stub
        raise UserError(f"--resume {out}: the run in {out} is already finished; its metrics are in {out / METRICS}")
    return load_latest(out)


def dry_run(config, *, data_dir: str | Path | None = None, download: bool = True, store: str | Path | None = None,
            tensorboard: Path | None = None) -> dict[str, Any]:
    """Check everything ``run_recorded`` would check before training (the device, the data, the
    model and method, the analyses, the store, TensorBoard), then time a few updates of a throwaway copy
    of the run to project its duration; returns what was resolved and the projection."""
    from ..engine.estimate import estimate
    projected = estimate(config, data_dir, download)
    if store:
        if Path(store).exists():
            Store(store)
        elif not os.access(next(p for p in Path(store).absolute().parents if p.exists()), os.W_OK):
            raise UserError(f"--store {store}: cannot create it there (folder not writable)")
    if tensorboard:
        from .trackers import require_tensorboard
        require_tensorboard()
    if config.train_threads == "auto" and projected.train_threads:      # what the run will train on
        config = config.model_copy(update={"train_threads": projected.train_threads})
    return {"config": config.model_dump(), "tasks": projected.tasks, "device": projected.device,
            "projected": projected.as_dict()}


def resume_command(out: Path | None, *, data_dir=None, store=None, tensorboard=None, download: bool = True) -> str | None:
    """The ``lamaml run --resume`` command that continues a run from its last checkpoint in ``out``
    (None: there is none), with the options that are not kept in the checkpoint."""
    from ..engine.checkpoint import CURRENT, PREVIOUS
    if out is None or not ((Path(out) / CURRENT).exists() or (Path(out) / PREVIOUS).exists()):
        return None
    words = ["lamaml", "run", "--resume", str(out)]
    for option, value in (("--data-dir", data_dir), ("--store", store), ("--tensorboard", tensorboard)):
        if value:
            words += [option, str(value)]
    return shlex.join(words + ([] if download else ["--no-download"]))


def load_runs(run_dirs: Sequence[str | Path], store: str | Path | None = None,
              where: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Finished runs' metrics from run folders (their metrics.json, or the file itself) and/or a results
    store (its ``done`` runs matching ``where``), each run once (its last copy: a folder and a store,
    or a seed run twice, name one run)."""
    runs = []
    for folder in run_dirs:
        path = Path(folder) / "metrics.json" if Path(folder).is_dir() else Path(folder)
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise UserError(f"--runs {folder}: no readable metrics.json there ({error.__class__.__name__})") from None
    if store:
        runs += [json.loads(row["metrics"]) for row in open_store(store).query([*where, "status=done"])]
    if not runs:
        raise UserError("no finished runs selected: give --runs DIR... or --store FILE (and check --where)")
    return latest_per_run(runs, lambda metrics: metrics.get("config"))


def check_writable(folder: Path) -> None:
    """Fail before the run, not after it, when the results could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {folder}: cannot create that folder ({error.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"--out {folder}: folder is not writable")
