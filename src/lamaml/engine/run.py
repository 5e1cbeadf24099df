"""One run from a resolved config: build the stream, the model and the method; train; report."""
from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..version import __version__
from ..config import RunConfig
from ..data import TaskStream, build_benchmark, resolve_data_dir
from ..errors import UserError
from ..hardware import cpu_info
from ..methods import Method, method_class
from ..models import build_model
from .checkpoint import Checkpointer, Every
from .plugins import Checkpoints, Plugin, refuse_for_joint
from .loop import StreamResult, train
from .threads import training_threads
from .anytime import AnytimeEvaluation
from .metrics import anytime_metrics, summarize
from .probes import Probes
from .results import code_commit, peak_rss_mb


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``auto`` (CUDA where PyTorch sees a GPU) or another PyTorch device
    name as a device; a UserError for a name PyTorch does not know or a GPU it does not see."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"device={name!r}: not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name}: no CUDA GPU is visible to PyTorch; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device={name}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s), "
                            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device       # another of PyTorch's devices (mps, xpu): as the user asks, untested here


def cuda_numerics(device: torch.device, precision: str = "float32", deterministic: bool = False) -> None:
    """On CUDA, how float32 is computed (process-wide flags, set before each run): ``precision``
    "float32" (full float32, the CPU's numbers) or "tf32" (PyTorch's default for convolutions on Ampere
    and later: a 10-bit mantissa, which a run's second-order meta-gradients go through too), and
    ``deterministic`` kernels (warning where an operation has none). Nothing on other devices."""
    if device.type != "cuda":
        return
    mode = "tf32" if precision == "tf32" else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):       # PyTorch 2.9 on: one API, never mixed
        torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = mode
    else:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    if deterministic:       # cuBLAS reads it when it first starts in the process
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def derived_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for the model's initial weights, the stream order and the method."""
    model, order, method = np.random.SeedSequence(seed).generate_state(3)
    return {"model": int(model), "order": int(order), "method": int(method)}


def build_method(name: str, model: torch.nn.Module, params, seed: int):
    cls = method_class(name)
    if not isinstance(params, cls.Params):
        params = cls.Params(**params)
    return cls(model, params, torch.Generator().manual_seed(seed))


def build_stream(benchmark: str, data_dir: str | Path | None, seed: int, samples_per_task: int | None = None,
                 tasks: int | None = None, download: bool = True, scenario: str | None = None) -> TaskStream:
    """The task stream of a built-in benchmark as every run of this seed sees it (``scenario`` None: the
    benchmark's own)."""
    return build_benchmark(benchmark, resolve_data_dir(data_dir), seed, samples_per_task, download,
                           scenario).first(tasks)


def build_paper_model(config: RunConfig, stream: TaskStream) -> torch.nn.Module:
    """The config's network (the paper's, with its preset's init), drawn from the run's model seed:
    the same initial weights as every run of this config."""
    torch.manual_seed(derived_seeds(config.seed)["model"])
    return build_model(config.model, stream.input_shape, stream.n_outputs, config.init)


def build_learner(config: RunConfig, model: torch.nn.Module, stream: TaskStream) -> Method:
    """The config's method on ``model``, seeded from the run's method seed, with the stream's task heads."""
    method = build_method(config.method, model, config.method_params(), derived_seeds(config.seed)["method"])
    method.use_task_heads(stream.head_mask())
    return method


def prepare(config: RunConfig, data_dir: str | Path | None = None,
            download: bool = True) -> tuple[torch.device, TaskStream, Method, list[Plugin]]:
    """What a run builds, and so checks, before training: the device, the task stream, the model and
    the method, and the plugins the config asks for (its analyses' probes).

    ``lamaml run --dry-run`` stops after this, so it refuses whatever the run would refuse.
    """
    device = resolve_device(config.device)
    cuda_numerics(device, config.cuda_precision, config.deterministic)
    stream = build_stream(config.benchmark, data_dir, config.seed, config.samples_per_task, config.tasks, download,
                          config.scenario)
    method = build_learner(config, build_paper_model(config, stream).to(device), stream)
    plugins: list[Plugin] = []
    if config.analyses:
        plugins.append(Probes(config.analyses, stream, device, config.analysis_every, config.analysis_samples))
    if config.eval_every:
        plugins.append(AnytimeEvaluation(stream, device, config.eval_every, config.eval_batch_size, config.glances,
                                         config.anytime_samples))
    refuse_for_joint(method, plugins)
    return device, stream, method, plugins


def train_as_configured(method: Method, stream: TaskStream, config: RunConfig, device: torch.device,
                        plugins: list[Plugin] = (), resume: dict | None = None) -> StreamResult:
    """The run loop with the config's protocol (epochs, batches, glances, evaluation) and its order seed."""
    order = torch.Generator().manual_seed(derived_seeds(config.seed)["order"])
    return train(method, stream, epochs=config.epochs, batch_size=config.batch_size, glances=config.glances,
                 generator=order, device=device, eval_batch_size=config.eval_batch_size,
                 evaluate=config.evaluate, plugins=plugins, resume=resume,
                 train_threads=training_threads(config.train_threads, method.model, device))


def run(config: RunConfig, data_dir: str | Path | None = None, download: bool = True,
        plugins: Callable[..., list[Plugin]] | None = None, checkpoint_dir: Path | None = None,
        checkpoint_every: Every | None = None, resume: dict | None = None) -> dict[str, Any]:
    """Run ``config`` and return the content of ``metrics.json``.

    ``plugins(stream, config, resume)`` gives the loop's plugins beyond the ones the config asks
    for (its analyses' probes; checkpoints with ``checkpoint_every``, saved into
    ``checkpoint_dir``); ``resume`` (a loaded checkpoint of this config) continues a run.
    """
    wall_start = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if resume is not None:
        started_at = resume.get("started_at", started_at)
    device, stream, method, own_plugins = prepare(config, data_dir, download)
    config = with_threads(config, method, device)
    plugins = list(plugins(stream, config, resume)) if plugins else []
    plugins += own_plugins
    threads, commits = threads_used(config, resume), code_used(resume)
    if checkpoint_every is not None:
        header = {"config": config.model_dump(), "lamaml_version": __version__, "started_at": started_at,
                  "checkpoint_every": str(checkpoint_every), "train_threads_used": threads, "code_used": commits}
        plugins.append(Checkpoints(Checkpointer(checkpoint_dir, checkpoint_every, header)))
    result = train_as_configured(method, stream, config, device, plugins, resume)
    metrics = report(result, config, stream, device, wall_start, started_at)
    metrics["resumed"] = resume is not None
    metrics["train_threads_used"] = threads
    if len(commits) > 1:    # trained by more than one version of the code
        metrics["code_used"] = commits
    return metrics


def code_used(resume: dict | None) -> list[str]:
    """The code (version and commit) of every process a run has trained in, over the runs its checkpoints
    continue, oldest first: metrics.json names only the last, so a run resumed by other code says so
    (a checkpoint written before this was recorded counts as "unrecorded")."""
    now = f"{__version__} {code_commit()}"
    before = [] if resume is None else resume.get("code_used") or ["unrecorded"]
    return before + [now] if not before or before[-1] != now else before


def with_threads(config: RunConfig, method: Method, device: torch.device, seeds: int = 1) -> RunConfig:
    """``config`` with ``train_threads: auto`` resolved to the count it trains on (engine/threads.py), so
    its records (config.json, the store, checkpoints) say how the run was computed."""
    if config.train_threads != "auto":
        return config
    threads = training_threads("auto", method.model, device, seeds) or 1
    return config.model_copy(update={"train_threads": threads})


def threads_used(config: RunConfig, resume: dict | None) -> list[int]:
    """Every training thread count a run has had, over the runs its checkpoints continue: a run resumed
    on another count than it started on (the count is not part of a run's identity) says so."""
    if resume is None:
        return [config.train_threads]
    before = resume.get("train_threads_used") or [(resume.get("config") or {}).get("train_threads", 1)]
    return sorted(set(before) | {config.train_threads})


def _json_matrix(matrix: np.ndarray) -> list[list[float | None]]:
    """Rows of the accuracy matrix; entries that were not evaluated (NaN) become null."""
    return [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in matrix]


def anytime_report(points: list[dict]) -> dict[str, Any]:
    """AAA, min-ACC, WC-ACC (engine/metrics.py) and the curve they come from, accuracies rounded as the matrix's."""
    curve = [{**point, "accuracy": round(point["accuracy"], 4), "accuracies": [round(a, 4) for a in point["accuracies"]]}
             for point in points]
    return {**anytime_metrics(points), "anytime_curve": curve}


def report(result: StreamResult, config: RunConfig, stream, device, wall_start: float,
           started_at: str) -> dict[str, Any]:
    return {
        **result.metrics,
        "acc_matrix": _json_matrix(result.acc_matrix),
        "baseline_accuracy": result.baseline.round(4).tolist(),
        "train_time_s": round(result.train_time_s, 3),
        "eval_time_s": round(result.eval_time_s, 3),
        "wall_time_s": round(time.perf_counter() - wall_start, 3),
        "ms_per_update": round(1000 * result.train_time_s / max(result.updates, 1), 4),
        "updates": result.updates,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "task_losses": [round(v, 6) for v in result.losses],
        "train_time_after_task_s": [round(v, 3) for v in result.train_time_after_task],
        **({"series": result.series} if result.series else {}),
        "scenario": result.scenario,
        **(anytime_report(result.anytime) if config.eval_every else {}),
        "accuracy_split": "val" if result.test_matrix is not None else "test",
        **({"test": {**summarize(result.test_matrix, result.test_baseline),
                     "acc_matrix": _json_matrix(result.test_matrix)}} if result.test_matrix is not None else {}),
        "seed": config.seed,
        "benchmark": config.benchmark,
        "method": config.method,
        "config": config.model_dump(),
        "tasks": stream.describe(),
        "lamaml_version": __version__,
        "code_commit": code_commit(),
        "torch_version": torch.__version__,
        "device": str(device),
        "host": platform.node(),
        "cpu": cpu_info()["model"],
        "started_at": started_at,
    }
