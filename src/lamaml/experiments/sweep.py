"""``lamaml sweep``: benchmarks x methods x seeds x a grid of settings, each combination run once.

Every combination is resolved to a full config and identified by its hash; combinations already
``done`` in the store are skipped, so a killed sweep resumes where it stopped and never runs a
combination twice. A grid key that a method does not have is left out for that method (sweeping
``opt_lr`` over La-MAML and C-MAML runs C-MAML once per remaining combination). The runs
themselves go to an engine (engines.py): a local process pool or Ray.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import RunConfig, resolve_config
from ..errors import UserError
from ..methods import method_class
from .engines import dispatch
from .store import Store, config_hash


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
            return list(range(first, last + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--seeds {text}: expected a range such as 0-4 or a list such as 0,2,5") from None


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


def combinations(spec: SweepSpec) -> list[RunConfig]:
    """Every distinct run of the sweep, fully resolved (and so validated) before anything runs."""
    configs, seen = [], set()
    for benchmark, method in itertools.product(spec.benchmarks, spec.methods):
        known = set(RunConfig.model_fields) | set(method_class(method).Params.model_fields)
        keys = [k for k in spec.grid if k in known]
        for values in itertools.product(*(spec.grid[k] for k in keys)):
            for seed in spec.seeds:
                overrides = {**spec.set, **dict(zip(keys, values))}
                config = resolve_config(benchmark, method, overrides, seed=seed, tasks=spec.tasks)
                digest = config_hash(config.model_dump())
                if digest not in seen:
                    seen.add(digest)
                    configs.append(config)
    return configs


def _distinct(configs: list[RunConfig]) -> list[RunConfig]:
    unique = {config_hash(c.model_dump()): c for c in reversed(configs)}
    return list(reversed(unique.values()))


def done_metrics(store_path: Path, spec: SweepSpec | list[SweepSpec]) -> list[dict[str, Any]]:
    """Metrics of the finished runs of a sweep, read from the store by configuration hash."""
    specs = [spec] if isinstance(spec, SweepSpec) else spec
    by_hash = {config_hash(json.loads(row["config"])): json.loads(row["metrics"])
               for row in Store(store_path).query(["status=done"])}
    wanted = _distinct([c for one in specs for c in combinations(one)])
    return [by_hash[h] for h in (config_hash(c.model_dump()) for c in wanted) if h in by_hash]


def run_sweep(spec: SweepSpec | list[SweepSpec], store_path: Path, jobs: int, data_dir: str | None,
              engine: str = "local", address: str | None = None, order=None) -> list[dict[str, Any]]:
    """Run every combination not yet done; ``order`` (a sort key on configs) puts long runs first.

    Several specs run as one pool (a combination they share runs once).
    """
    store = Store(store_path)
    abandoned = store.mark_abandoned()
    if abandoned:
        print(f"sweep: {abandoned} run(s) left running by a dead process marked failed; they will run again",
              file=sys.stderr)
    configs = combinations(spec) if isinstance(spec, SweepSpec) else _distinct(
        [c for one in spec for c in combinations(one)])
    done = store.done_hashes()
    pending = [c.model_dump() for c in configs if config_hash(c.model_dump()) not in done]
    if order is not None:
        pending.sort(key=order)
    print(f"sweep: {len(configs)} combinations, {len(configs) - len(pending)} already done, "
          f"{len(pending)} to run on {engine} ({jobs} jobs)", file=sys.stderr)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return dispatch(engine, pending, store_path, data_dir, threads, jobs, address)
