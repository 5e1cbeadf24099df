"""Where the runs of a sweep run: a local process pool, or a Ray cluster (``pip install lamaml[ray]``).

Both run each combination with the same ``run_one``, so results are identical whichever engine
ran them; both print one line per finished run on stderr, naming the run by ``label`` (the sweep
passes one naming the settings that vary in it). With no ``address`` the Ray engine starts a local
Ray instance (and stops it at the end); with one, it joins that cluster (ray_cluster.py). The
store and data paths are made absolute here, in the driver, before anything is dispatched: a
worker of a Ray cluster runs in a folder of its own (where ``ray start`` ran), where a relative
path names another file. Workers must see the same data folder and store path (a shared file
system), as with any Ray job.

Each run is claimed in the store before it starts (``Store.claim``); a worker that finds its
combination done, or running in a live process, skips it, so no combination runs twice however a
sweep and its reruns overlap. Local workers die with the sweep (lifeline.py).

A job is a list of combinations: one, or (``lamaml sweep --batch-seeds``) the seeds of one
configuration, which ``run_group`` trains as one batched computation where the method allows
(engine/seeds.py, as ``lamaml run --seeds``) and one after another where it does not. Each seed is
still claimed, recorded and reported as its own run.

With ``checkpoint_every`` (``10m``, ``50b``, ``2``: see engine.checkpoint.Every) each run
checkpoints into ``<store folder>/checkpoints/<config hash>/``; a run claimed again after its process
was killed resumes from there, and the folder is deleted when the run ends. A method trained on all
tasks at once (IID) cannot resume mid-way and runs without checkpoints.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..data.files import resolve_data_dir
from ..durations import duration
from ..errors import RunFailed, UserError, WriteFailed
from .lifeline import die_with_parent
from .ray_cluster import connect
from .store import Store, config_hash
from .sweep_lines import Label, SweepLines


def absolute_paths(store_path: str | os.PathLike, data_dir: str | os.PathLike | None) -> tuple[str, str]:
    """The store and the data folder (``--data-dir``, else ``$LAMAML_DATA``, else ./data) as absolute paths."""
    return (os.path.abspath(os.path.expanduser(store_path)),
            os.path.abspath(resolve_data_dir(data_dir)))


def dispatch(engine: str, pending: list[list[dict[str, Any]]], store_path: str | os.PathLike, data_dir: str | None,
             threads: int, jobs: int, address: str | None = None, label: Label | None = None,
             tensorboard: str | os.PathLike | None = None, checkpoint_every: str | None = None,
             expected: dict[str, float] | None = None, gpus_per_run: float = 1.0) -> list[dict[str, Any]]:
    """Run the jobs of ``pending`` (lists of combinations: ``run_group``) on ``engine`` ("local" or "ray"),
    with paths resolved in this process;
    ``tensorboard``: a folder where every run logs into a subfolder of its own; ``checkpoint_every``:
    how often each run checkpoints (see the module's docstring); ``expected``: each run's projected
    seconds by config hash, which weigh the time left in the progress lines (``sweep_lines.SweepLines``);
    ``gpus_per_run``: on Ray, the GPU share a job asks for when its runs compute on CUDA (ray_resources)."""
    if not pending:     # nothing to do needs no cluster
        return []
    store_path, data_dir = absolute_paths(store_path, data_dir)
    tensorboard = os.path.abspath(os.path.expanduser(tensorboard)) if tensorboard else None
    options = (tensorboard, checkpoint_every, expected)
    if engine == "ray":
        return run_on_ray(pending, store_path, data_dir, threads, address, jobs, label, *options,
                          gpus_per_run=gpus_per_run)
    return run_local(pending, store_path, data_dir, threads, jobs, label, *options)


def checkpoint_folder(store_path: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Where a sweep run of ``config`` keeps its checkpoints: beside the store, by configuration hash."""
    return Path(store_path).parent / "checkpoints" / config_hash(config)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 'es' if noun.endswith('h') else 's'}"


def _checkpoint_of(store_path: str | os.PathLike, config: dict[str, Any]) -> tuple[dict, int] | None:
    """(the usable checkpoint a killed sweep run of ``config`` left, the run's task count), or None. Safe
    while the run writes it (a save replaces the file atomically; one moved away meanwhile is skipped)."""
    from ..data import benchmark_info
    from ..engine.checkpoint import CURRENT, load_latest
    folder = checkpoint_folder(store_path, config)
    try:
        state, _ = load_latest(folder)
        if config_hash(state.get("config") or {}) != config_hash(config):
            return None
        tasks = config.get("tasks") or benchmark_info(config["benchmark"]).n_tasks
    except (UserError, OSError, KeyError):
        return None
    if state.get("saved_at") is None:    # a checkpoint written before the time was kept in it: its file's
        try:
            state["saved_at"] = (folder / CURRENT).stat().st_mtime
        except OSError:
            pass
    return state, tasks


def checkpoint_progress(store_path: str | os.PathLike, config: dict[str, Any]) -> str | None:
    """Where the checkpoint of an unfinished sweep run of ``config`` stands, in words (None: no usable
    checkpoint of this configuration), e.g. ``checkpoint of 2026-12-03 07:52 UTC: task 2 of 5, 1,204
    batches of its epoch 1 done; 1.4 h trained, about 3.9 h of training left at its pace so far``."""
    found = _checkpoint_of(store_path, config)
    if found is None:
        return None
    state, tasks = found
    progress, saved = state.get("progress") or {}, state.get("saved_at")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(saved)) if saved else "an unrecorded time"
    task, epochs = progress.get("task", 0), config.get("epochs", 1)
    where = f"all {tasks} tasks trained" if task >= tasks else (
        f"task {task + 1} of {tasks}, {_count(progress.get('batch', 0), 'batch')} of its epoch "
        f"{progress.get('epoch', 0) + 1}{f' of {epochs}' if epochs > 1 else ''} done")
    trained = progress.get("train_time", 0.0)
    share = share_done(progress, tasks, epochs, config.get("batch_size", 10))
    left = trained * (1 - share) / share if share and trained > 0 else None
    return f"checkpoint of {when}: {where}; {duration(trained)} trained" + (
        f", about {duration(left)} of training left at its pace so far" if left is not None else "")


def checkpoint_share(store_path: str | os.PathLike, config: dict[str, Any]) -> float | None:
    """The share of its training batches that the checkpoint a killed sweep run of ``config`` left has done
    (None: no usable checkpoint, or one saved before any batch)."""
    found = _checkpoint_of(store_path, config)
    if found is None:
        return None
    state, tasks = found
    return share_done(state.get("progress") or {}, tasks, config.get("epochs", 1), config.get("batch_size", 10))


def share_done(progress: dict[str, Any], tasks: int, epochs: int, batch_size: int) -> float | None:
    """The share of a run's training batches a checkpoint's ``progress`` has done, counting every task as large
    as the current one (its batch order's length: the benchmarks' tasks are equal); None where that cannot be
    told (no batch order saved) or nothing is done yet."""
    if progress.get("task", 0) >= tasks:
        return 1.0
    if not progress.get("batch") and progress.get("order") is None:     # saved between epochs or tasks
        done = progress.get("task", 0) * epochs + progress.get("epoch", 0)
        return done / (tasks * epochs) if done else None
    order = progress.get("order")
    per_epoch = -(-len(order) // batch_size) if order is not None and len(order) else 0
    done = (progress.get("task", 0) * epochs + progress.get("epoch", 0)) * per_epoch + progress.get("batch", 0)
    return done / (tasks * epochs * per_epoch) if per_epoch and done else None


def _resume_state(folder: Path, config: dict[str, Any]) -> dict | None:
    """The checkpoint a killed run of ``config`` left in ``folder``, or None (then the folder is cleared:
    no checkpoint, none usable, or one of another configuration)."""
    from ..engine.checkpoint import load_latest
    if not folder.exists():
        return None
    try:
        state, _ = load_latest(folder)
        if config_hash(state.get("config") or {}) == config_hash(config):
            return state
    except UserError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _fail_claimed(store: Store, claimed: list[tuple[int, dict[str, Any]]], error: BaseException) -> list[dict[str, Any]]:
    """End the claimed rows failed, so none is left 'running' under a live worker (a Ray worker outlives its
    task): a user-facing error (bad data, a diverging loss) becomes their outcomes; anything else is a bug,
    recorded as a crash and raised again."""
    from ..errors import LamamlError
    known = isinstance(error, LamamlError)
    message = str(error) if known else f"crashed: {error.__class__.__name__}: {error}"
    for run_id, _ in claimed:
        store.fail(run_id, message)
    if not known:
        raise error
    return [{"status": "failed", "error": message, "config": config} for _, config in claimed]


def run_one(config_dict: dict[str, Any], store_path: str, data_dir: str | None, threads: int,
            tensorboard: str | None = None, checkpoint_every: str | None = None) -> dict[str, Any]:
    """One combination in a worker: claim it, run it (from its checkpoint, where a killed run of it left
    one), record the outcome; skip it if another process has done it or is running it. The outcome says
    how many seconds the worker spent on it."""
    start = time.perf_counter()
    outcome = _run_one(config_dict, store_path, data_dir, threads, tensorboard, checkpoint_every)
    return {**outcome, "seconds": time.perf_counter() - start}


def _run_one(config_dict: dict[str, Any], store_path: str, data_dir: str | None, threads: int,
             tensorboard: str | None = None, checkpoint_every: str | None = None) -> dict[str, Any]:
    import torch
    torch.set_num_threads(threads)
    from ..config import RunConfig
    from ..engine import run
    from ..engine.checkpoint import Every
    from ..methods import method_class
    from .progress import RunPlugins
    store = Store(store_path)
    run_id, holder = store.claim(config_dict)
    if run_id is None:
        return {"status": "skipped", "reason": holder, "config": config_dict}
    joint = method_class(config_dict["method"]).joint
    every = Every.parse(checkpoint_every) if checkpoint_every and not joint else None
    # A checkpoint an earlier sweep left is resumed even when this one writes none (--checkpoint-every off)
    folder = None if joint else checkpoint_folder(store_path, config_dict)
    resume = plugins = None
    try:    # from the claim on, any error ends in the row: never left 'running' under a live worker
        resume = _resume_state(folder, config_dict) if folder else None
        plugins = RunPlugins(quiet=True, tensorboard=Path(tensorboard)) if tensorboard else None
        metrics = run(RunConfig(**config_dict), data_dir=data_dir, download=False, plugins=plugins,
                      checkpoint_dir=folder if every else None, checkpoint_every=every, resume=resume)
    except BaseException as error:
        if folder and isinstance(error, RunFailed) and not isinstance(error, WriteFailed):
            shutil.rmtree(folder, ignore_errors=True)   # a diverging loss: a rerun from there would diverge again
        # else (a full disk, data missing on this node): the rerun resumes where this attempt left off
        return _fail_claimed(store, [(run_id, config_dict)], error)[0]
    if plugins:
        plugins.finish(metrics)
    store.finish(run_id, metrics)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    return {"status": "done", "ra": metrics["ra"], "resumed": resume is not None, "config": config_dict}


def run_group(configs: list[dict[str, Any]], store_path: str, data_dir: str | None, threads: int,
              tensorboard: str | None = None, checkpoint_every: str | None = None) -> list[dict[str, Any]]:
    """A job of the pool: one combination (``run_one``), or the seeds of one configuration, claimed one by
    one and trained as one batched computation when two or more are claimed and the method allows."""
    if len(configs) == 1:
        return [run_one(configs[0], store_path, data_dir, threads, tensorboard, checkpoint_every)]
    import torch
    torch.set_num_threads(threads)
    from ..config import RunConfig
    from ..engine.seeds import prepare_seeds, run_seeds
    store, claimed, outcomes = Store(store_path), [], []
    for config in configs:
        run_id, holder = store.claim(config)
        if run_id is None:
            outcomes.append({"status": "skipped", "reason": holder, "config": config})
        else:
            claimed.append((run_id, config))
    try:    # the claimed rows end failed on any error here, never left 'running' under a live worker
        runs, reason = prepare_seeds([RunConfig(**c) for _, c in claimed], data_dir, download=False) \
            if len(claimed) > 1 else (None, "one seed")
    except BaseException as error:
        return outcomes + _fail_claimed(store, claimed, error)
    if runs is None:        # one after another, each as its own job would run it (its claim released first)
        for run_id, config in claimed:
            store.release(run_id)
            outcomes.append(run_one(config, store_path, data_dir, threads, tensorboard, checkpoint_every))
        return outcomes
    start = time.perf_counter()
    try:
        metrics = run_seeds(runs)
    except BaseException as error:
        return outcomes + _fail_claimed(store, claimed, error)
    share = (time.perf_counter() - start) / len(claimed)
    for (run_id, config), one in zip(claimed, metrics):
        store.finish(run_id, {**one, "batched_seeds": len(claimed)})     # its times are a share of the batch's
        shutil.rmtree(checkpoint_folder(store_path, config), ignore_errors=True)    # an earlier sweep's, now moot
        outcomes.append({"status": "done", "ra": one["ra"], "resumed": False, "batched": len(claimed),
                         "config": config, "seconds": share})
    return outcomes


def run_local(pending: list[list[dict[str, Any]]], store_path: str, data_dir: str | None, threads: int,
              jobs: int, label: Label | None = None, tensorboard: str | None = None,
              checkpoint_every: str | None = None, expected: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Run the jobs of ``pending`` (each a list of combinations, see ``run_group``) in ``jobs`` fresh
    worker processes.

    Workers are spawned, never forked: a child forked from a process whose torch has run an
    OpenMP parallel region hangs in its first parallel op (libgomp is not fork-safe), and the
    driver has usually run one (loading data, or a run before the sweep, as a test does).
    Every worker is started by ``submit``, in this thread, which waits here until the pool is done:
    lifeline.py needs the thread that starts the workers to outlive them. A worker killed from outside
    (out of memory, a kill) breaks the pool: the sweep stops with one line, and its rerun continues.
    """
    results, report = [], SweepLines(sum(map(len, pending)), label, expected, jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_group, job, store_path, data_dir, threads, tensorboard, checkpoint_every)
                   for job in pending]
        try:
            for future in as_completed(futures):
                for outcome in future.result():
                    results.append(outcome)
                    report(outcome)
        except BrokenProcessPool:
            raise RunFailed(f"a worker process was killed (out of memory, or by a signal) after {len(results)} of "
                            f"{sum(map(len, pending))} run(s); finished runs are in the store {store_path}: run the same "
                            f"command again to continue" + (" (runs resume from their checkpoints)"
                                                            if checkpoint_every else "")) from None
    return results


def check_gpu_share(gpus_per_run: float) -> float:
    """``--gpus-per-run``, as Ray takes it: a share of one GPU (0 < x <= 1) or a whole number of them."""
    if not (gpus_per_run > 0 and (gpus_per_run <= 1 or float(gpus_per_run).is_integer())):
        raise UserError(f"--gpus-per-run {gpus_per_run:g}: must be a share of one GPU (0 < x <= 1, e.g. 0.25 "
                        f"for four runs per GPU) or a whole number of GPUs")
    return gpus_per_run


def ray_resources(group: list[dict[str, Any]], cluster_gpus: float, gpus_per_run: float) -> dict[str, float]:
    """What a Ray task of ``group`` asks for: a CPU, and ``gpus_per_run`` GPUs when its runs compute on CUDA
    (``device=cuda``, or ``auto`` on a cluster with GPUs). On a GPU node Ray hides every GPU from a task
    that asks for none (CUDA_VISIBLE_DEVICES=""), so without this a cuda run fails there and an auto run
    trains on the CPU."""
    devices = {config.get("device", "cpu") for config in group}
    if "cuda" in devices and cluster_gpus <= 0:
        raise UserError("--set device=cuda with --engine ray: the Ray cluster has no GPU (`ray status` lists "
                        "its resources); use device=auto or cpu, or a cluster started with GPUs")
    if "cuda" in devices or ("auto" in devices and cluster_gpus > 0):
        return {"num_cpus": 1, "num_gpus": gpus_per_run}
    return {"num_cpus": 1}


def run_on_ray(pending: list[list[dict[str, Any]]], store_path: str, data_dir: str | None, threads: int,
               address: str | None, jobs: int, label: Label | None = None,
               tensorboard: str | None = None, checkpoint_every: str | None = None,
               expected: dict[str, float] | None = None, gpus_per_run: float = 1.0) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'lamaml[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here and address:
        connect(ray, address, log_to_driver=False, configure_logging=False)
    elif started_here:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote, gpus = ray.remote(run_group), ray.cluster_resources().get("GPU", 0)
        asks = [ray_resources(job, gpus, gpus_per_run) for job in pending]    # a refusal dispatches nothing
        refs = [remote.options(**ask).remote(job, store_path, data_dir, threads, tensorboard, checkpoint_every)
                for job, ask in zip(pending, asks)]
        workers = int(ray.cluster_resources().get("CPU", jobs)) if address else jobs
        results, waiting, report = [], list(refs), SweepLines(sum(map(len, pending)), label, expected, workers)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for outcome in ray.get(ready[0]):
                results.append(outcome)
                report(outcome)
        return results
    finally:
        if started_here:
            ray.shutdown()
