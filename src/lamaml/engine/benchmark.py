"""A built-in benchmark as ``lamaml run`` builds it: its task stream, the paper's presets for it, and
the paper's network, so that ``lamaml.fit`` on it gives the same run as the command line."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, resolve_config
from ..config.schema import HPARAMS, SETTINGS
from ..data import TaskStream, benchmark_info, check_scenario
from ..errors import UserError
from .run import build_paper_model, build_stream


@dataclass(frozen=True)
class Benchmark:
    """``stream``: the tasks; ``config(method)``: the run ``lamaml run`` would make of them with
    ``method`` (the paper's preset for this benchmark, method and setting); ``model(method)``: the
    paper's network with that preset's init and the run's initial weights."""

    name: str
    stream: TaskStream
    seed: int = 0
    setting: str = "single"
    hparams: str = "scripts"
    samples_per_task: int | None = None
    tasks: int | None = None
    scenario: str | None = None

    def config(self, method: str = "la-maml", **overrides: Any) -> RunConfig:
        """The resolved run: preset < this benchmark's seed, tasks, sizes and scenario < ``overrides`` (any
        ``lamaml run --set`` key: a run field or one of the method's hyperparameters)."""
        config = resolve_config(self.name, method, overrides, seed=self.seed, tasks=self.tasks,
                                samples_per_task=self.samples_per_task, setting=self.setting,
                                hparams=self.hparams, scenario=self.scenario)
        if check_scenario(self.name, config.scenario) != self.stream.scenario:
            raise UserError(f"scenario={check_scenario(self.name, config.scenario)}: this stream was built "
                            f"{self.stream.scenario}; build it with lamaml.benchmark(..., scenario=...)")
        return config

    def model(self, method: str = "la-maml", **overrides: Any) -> torch.nn.Module:
        """The network ``lamaml run`` trains for ``method`` (MLP or conv net, the preset's init),
        with the same initial weights (drawn from the seed's model seed)."""
        return build_paper_model(self.config(method, **overrides), self.stream)


def load_benchmark(name: str, data_dir: str | Path | None = None, *, setting: str = "single", seed: int = 0,
                   tasks: int | None = None, samples_per_task: int | None = None, hparams: str = "scripts",
                   download: bool = True, scenario: str | None = None) -> Benchmark:
    """Build benchmark ``name``'s stream for ``seed`` (the first ``tasks`` tasks, ``samples_per_task``
    training samples each, under ``scenario``; None: the benchmark's own), as ``lamaml run`` does."""
    benchmark_info(name)
    check_scenario(name, scenario)
    if setting not in SETTINGS:
        raise UserError(f"setting={setting!r}: choose single (one pass, with glances) or multi (10 epochs)")
    if hparams not in HPARAMS:
        raise UserError(f"hparams={hparams!r}: choose scripts (the authors' scripts) or appendix")
    for key, value in {"seed": seed, "tasks": tasks, "samples_per_task": samples_per_task}.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (key != "seed")):
            raise UserError(f"{key}={value!r}: must be an integer >= {int(key != 'seed')}")
    stream = build_stream(name, data_dir, seed, samples_per_task, tasks, download, scenario)
    return Benchmark(name, stream, seed, setting, hparams, samples_per_task, tasks, scenario)
