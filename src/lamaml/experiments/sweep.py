"""``lamaml sweep``: benchmarks x methods x seeds x a grid of settings, each combination run once.

Every combination is resolved to a full config and identified by its hash; combinations already
``done`` in the store are skipped, so a killed sweep resumes where it stopped and never runs a
combination twice. A grid key that a method does not have is left out for that method (sweeping
``opt_lr`` over La-MAML and C-MAML runs C-MAML once per remaining combination); a key that no
method of the sweep has, and no run has, is refused with the closest name. The data of every
benchmark is checked (and fetched, where downloads are allowed) once, before any run starts. The
runs themselves go to an engine (engines.py): a local process pool or Ray, each finished run
reported on one line naming the settings that vary in the sweep.
"""
from __future__ import annotations

import difflib
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import RunConfig, resolve_config
from ..data import require_data, resolve_data_dir
from ..engine.checkpoint import Every
from ..errors import DataError, UserError
from ..methods import METHODS, method_class
from .engines import check_gpu_share, dispatch
from .groups import group_by_setting
from .projection import print_projection
from .seeds import halved, threads_per_job
from .store import NOT_IDENTITY, Store, config_hash


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    benchmarks: list[str] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    tasks: int | None = Field(None, ge=1)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_range(cls, value):
        if isinstance(value, str):
            return parse_seeds(value)
        return value


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5``."""
    try:
        if "-" in text.strip("-"):
            first, last = (int(v) for v in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            first = last = 0
            seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--seeds {text}: expected a range such as 0-4 or a list such as 0,2,5") from None
    if last < first:
        raise UserError(f"--seeds {text}: a range goes up, e.g. {last}-{first}")
    return seeds


def load_spec(path: Path) -> SweepSpec:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{path}: cannot read the sweep file ({error.__class__.__name__})") from None
    return validate_spec(raw, str(path))


def validate_spec(raw: Any, source: str) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def check_grid(spec: SweepSpec) -> None:
    """Refuse a grid key that is neither a run setting nor a hyperparameter of any method of the sweep (a
    typo would otherwise sweep nothing: every method leaves out a key it does not have), suggesting the
    closest name."""
    run_fields = set(RunConfig.model_fields) - {"benchmark", "method", "params"}
    hyperparameters = {method: set(method_class(method).Params.model_fields) for method in spec.methods}
    both = sorted(set(spec.grid) & set(spec.set))
    if both:
        raise UserError(f"sweep: grid and set both give {', '.join(both)}: sweep it or fix it, not both")
    if "seed" in spec.grid or "seed" in spec.set:
        raise UserError("sweep: the seeds are the sweep's own (seeds: 0-4, --seeds), not a grid or set key")
    for key in spec.grid:
        if key in NOT_IDENTITY:     # two values would be one run: a store holds a config's result once
            raise UserError(f"sweep: grid key {key!r} is not part of a run's identity (how it is computed, not "
                            f"what), so its values would be one run; sweep it in separate stores, or --set it")
        if key in run_fields or any(key in names for names in hyperparameters.values()):
            continue
        known = sorted(run_fields.union(*hyperparameters.values()))
        close = difflib.get_close_matches(key, known, n=1)
        owners = sorted(name for name, cls in METHODS.items() if key in cls.Params.model_fields)
        hint = (f"it is a hyperparameter of {', '.join(owners)} only" if owners else
                f"did you mean {close[0]}?" if close else "see `lamaml config --method NAME` for the settings")
        raise UserError(f"sweep: grid key {key!r} is neither a run setting nor a hyperparameter of "
                        f"{', '.join(spec.methods)}; {hint}")


def combinations(spec: SweepSpec) -> list[RunConfig]:
    """Every distinct run of the sweep, fully resolved (and so validated) before anything runs."""
    check_grid(spec)
    configs, seen = [], set()
    for benchmark, method in itertools.product(spec.benchmarks, spec.methods):
        known = set(RunConfig.model_fields) | set(method_class(method).Params.model_fields)
        keys = [k for k in spec.grid if k in known]
        for values in itertools.product(*(spec.grid[k] for k in keys)):
            for seed in spec.seeds:
                overrides = {**spec.set, **dict(zip(keys, values))}
                try:
                    config = resolve_config(benchmark, method, overrides, seed=seed, tasks=spec.tasks)
                except UserError as error:      # a grid value is named as one, not as a --set value
                    text = str(error)
                    if any(text.startswith(f"--set {key}=") for key in keys):
                        raise UserError("--grid" + text[len("--set"):]) from None
                    raise
                digest = config_hash(config.model_dump())
                if digest not in seen:
                    seen.add(digest)
                    configs.append(config)
    return configs


def _distinct(configs: list[RunConfig]) -> list[RunConfig]:
    unique = {config_hash(c.model_dump()): c for c in reversed(configs)}
    return list(reversed(unique.values()))


def done_by_hash(store_path: Path) -> dict[str, dict[str, Any]]:
    """Metrics of every finished run of a store, by configuration hash."""
    return {config_hash(json.loads(row["config"])): json.loads(row["metrics"])
            for row in Store(store_path).query(["status=done"])}


def done_metrics(store_path: Path, spec: SweepSpec | list[SweepSpec],
                 by_hash: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Metrics of the finished runs of a sweep, read from the store by configuration hash (or from
    ``by_hash``, done_by_hash's answer, when several sweeps are read from one store)."""
    specs = [spec] if isinstance(spec, SweepSpec) else spec
    by_hash = done_by_hash(store_path) if by_hash is None else by_hash
    wanted = _distinct([c for one in specs for c in combinations(one)])
    return [by_hash[h] for h in (config_hash(c.model_dump()) for c in wanted) if h in by_hash]


def run_sweep(spec: SweepSpec | list[SweepSpec], store_path: Path, jobs: int, data_dir: str | None,
              engine: str = "local", address: str | None = None, order=None,
              tensorboard: Path | None = None, project: bool = False,
              checkpoint_every: str | None = None, batch_seeds: bool = False,
              gpus_per_run: float = 1.0) -> list[dict[str, Any]]:
    """Run every combination not yet done; ``order`` (a sort key on configs) puts long runs first;
    ``tensorboard``: a folder where each run logs into a subfolder of its own; ``project``: print the
    projected duration first (projection.py); ``checkpoint_every`` (``10m``, ``50b``, ``2``): each run
    checkpoints beside the store that often, and a killed one resumes there (engines.py); ``batch_seeds``:
    the pending seeds of each configuration go to one worker, which trains them as one batched
    computation where the method allows (engines.run_group; no checkpoints, no TensorBoard);
    ``gpus_per_run``: on Ray, the GPU share a job of CUDA runs asks for (engines.ray_resources).

    Several specs run as one pool (a combination they share runs once).
    """
    if batch_seeds and (checkpoint_every is not None or tensorboard):
        raise UserError("--batch-seeds trains seeds together, which neither checkpoint nor log to TensorBoard "
                        "one by one: drop --checkpoint-every and --tensorboard, or --batch-seeds")
    check_gpu_share(gpus_per_run)
    if checkpoint_every is not None:
        checkpoint_every = str(Every.parse(checkpoint_every))     # a bad value stops here, not in every worker
    configs = combinations(spec) if isinstance(spec, SweepSpec) else _distinct(
        [c for one in spec for c in combinations(one)])
    store = Store(store_path)
    abandoned = store.mark_abandoned()
    if abandoned:
        print(f"sweep: {abandoned} run(s) left running by a dead process marked failed; they will run again",
              file=sys.stderr)
    done = store.done_hashes()
    pending = [c.model_dump() for c in configs if config_hash(c.model_dump()) not in done]
    if order is not None:
        pending.sort(key=order)
    check_data({c["benchmark"] for c in pending}, data_dir)
    print(f"sweep: {len(configs)} combinations, {len(configs) - len(pending)} already done, "
          f"{len(pending)} to run on {engine} ({jobs} jobs)", file=sys.stderr)
    jobs_of = seed_groups(pending, jobs) if batch_seeds else [[c] for c in pending]
    expected = None
    threads = threads_per_job(max(1, min(jobs, len(jobs_of))))    # fewer runs than jobs: the cores shared by them
    if project and pending and not address:     # a cluster's machines are not this one: no projection from here
        expected = print_projection(jobs_of, store, data_dir, jobs, threads)
    label = progress_label([c.model_dump() for c in configs])
    return dispatch(engine, jobs_of, store_path, data_dir, threads, jobs, address, label, tensorboard,
                    checkpoint_every, expected, gpus_per_run)


def seed_groups(configs: list[dict[str, Any]], jobs: int = 1) -> list[list[dict[str, Any]]]:
    """The configs grouped by everything but the seed, in the order of each group's first config; with fewer
    groups than ``jobs``, the largest halved until every job has one (``seeds.halved``): one configuration's
    five seeds on two cores train as 3 and 2 batched seeds side by side, not as 5 on one core with the other
    idle. Each seed stays equal to its separate run either way (each group trains on one thread)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for config in configs:
        grouped.setdefault(config_hash({**config, "seed": 0}), []).append(config)
    return halved(list(grouped.values()), jobs)


def check_data(benchmarks, data_dir: str | None) -> None:
    """Once, before any run is dispatched: the data of every benchmark is there, or fetched now where
    downloads are allowed (workers never download); otherwise one line, rather than one failure per run."""
    root = resolve_data_dir(data_dir)
    for name in sorted(benchmarks):
        try:
            require_data(name, root)
        except DataError as error:
            raise DataError(f"sweep: {name}: {error}; no run was started") from None


def progress_label(configs: list[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """config -> ``mnist-rotations la-maml alpha_init=0.3 seed 1``: the settings that vary in the sweep,
    named as ``lamaml report`` names its groups (groups.group_by_setting)."""
    names = {}
    for group in group_by_setting(configs, lambda config: config):
        for config in group.members:
            names[config_hash(config)] = f"{group.benchmark} {group.label}"

    def label(config: dict[str, Any]) -> str:
        name = names.get(config_hash(config)) or f"{config['benchmark']} {config['method']}"
        return f"{name} seed {config['seed']}"
    return label
