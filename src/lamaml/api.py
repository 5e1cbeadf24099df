"""The Python API: La-MAML (or any method) on your own model, on your own tasks or a built-in benchmark.

    import lamaml
    result = lamaml.fit(my_model, [(train_0, test_0), (train_1, test_1)], method="la-maml",
                        alpha_init=0.15, opt_lr=0.3)
    print(result.ra, result.bti, result.acc_matrix, result.heads)

Your tasks: each is ``(train, test)``, a dict ``{"train": ..., "test": ..., "classes": [...]}`` or a
``lamaml.Task``; ``train`` and ``test`` are ``(inputs, labels)`` tensors or Datasets of ``(x, y)``.

- Task ids: tasks that name their ``classes`` get task-aware heads (each task's loss and predictions
  see only its classes, as the vision benchmarks); otherwise one head is shared by all tasks.
  ``result.heads`` says which ("task-aware" or "single").
- Inputs: floats are used in the default dtype; uint8 inputs are images and are scaled to [0, 1],
  as the built-in benchmarks scale theirs; other integer inputs are refused. Labels are class
  indices >= 0, one per sample. The model is tried on two samples first: inputs it cannot take,
  or too few outputs for the labels, are one ``UserError`` naming the shapes.
- Protocol: by default the paper's single-pass protocol of La-MAML on MNIST (one epoch, batches
  of 10, 5 glances at each batch); the method's hyperparameters default to the authors' values.
- Evaluation runs in eval mode (dropout off, batch norm on running statistics); each module's mode
  is restored after.

A built-in benchmark gives the run ``lamaml run`` makes, accuracy matrix included:

    bench = lamaml.benchmark("mnist-rotations", data_dir="data", seed=0)
    result = lamaml.fit(bench.model("la-maml"), bench, "la-maml")   # = lamaml run mnist-rotations la-maml

The preset's epochs, batch size, glances and hyperparameters apply unless given to ``fit``.
"""
from __future__ import annotations

import itertools
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from pydantic import ValidationError

from .data import TaskStream, stream_from_data
from .engine import (Benchmark, Callbacks, Plugin, StreamResult, build_learner, cuda_numerics, eval_mode,
                     load_benchmark, resolve_device, train_as_configured)
from .engine.metrics import ra_so_far
from .errors import UserError
from .methods import MethodParams, method_class
from .models.modes import batch_norms

# The paper's single-pass protocol for La-MAML on MNIST (its presets for Rotations and Permutations).
EPOCHS, BATCH_SIZE, GLANCES = 1, 10, 5


def benchmark(name: str, data_dir: str | Path | None = None, *, setting: str = "single", seed: int = 0,
              tasks: int | None = None, samples_per_task: int | None = None, hparams: str = "scripts",
              download: bool = True, scenario: str | None = None) -> Benchmark:
    """Built-in benchmark ``name`` (``lamaml list``) as ``lamaml run`` builds it for ``seed``.

    ``.stream`` is its tasks (the first ``tasks``; ``samples_per_task`` training samples each, None:
    the benchmark's own); ``.config(method)`` the run's resolved settings (the paper's preset for
    ``setting`` and ``hparams``); ``.model(method)`` the paper's network with that run's initial weights.
    ``data_dir``: as ``--data-dir`` (None: ``$LAMAML_DATA``, then ./data). ``scenario``: task-il,
    class-il or domain-il where the benchmark allows it (None: its own; ``lamaml list``).
    """
    return load_benchmark(name, data_dir, setting=setting, seed=seed, tasks=tasks,
                          samples_per_task=samples_per_task, hparams=hparams, download=download, scenario=scenario)


@dataclass
class _Protocol:
    """What ``train_as_configured`` and ``build_learner`` read of a run config, for the user's own tasks."""

    method: str
    params: MethodParams
    seed: int
    epochs: int
    batch_size: int
    glances: int
    train_threads: int | str | None
    eval_batch_size: int = 10000
    evaluate: str = "all"

    def method_params(self) -> MethodParams:
        return self.params


def fit(model: torch.nn.Module, tasks: Sequence[Any] | TaskStream | Benchmark, method: str = "la-maml", *,
        epochs: int | None = None, batch_size: int | None = None, glances: int | None = None,
        seed: int | None = None, device: str | None = None, train_threads: int | str | None = "auto",
        progress: bool = True,
        on_task_end: Callable[[int, np.ndarray], None] | None = None, cuda_precision: str = "float32",
        deterministic: bool = False, **hyperparameters: Any) -> StreamResult:
    """Train ``model`` on ``tasks`` in order with ``method``; returns the accuracy matrix and metrics.

    ``tasks``: your tasks (see the module's docstring), a ``TaskStream``, or ``lamaml.benchmark(...)``.
    ``epochs``, ``batch_size``, ``glances``: None takes the benchmark's preset, or for your own tasks
    1, 10 and 5 (La-MAML's single-pass protocol on MNIST). ``seed`` (None: the benchmark's, or 0)
    seeds the stream order and the method. ``hyperparameters``: the method's (``lamaml list``); with
    a benchmark, any ``lamaml run --set`` key. ``progress``: a tqdm bar on stderr when it is a
    terminal. ``on_task_end(task, row)``: after each task is learned and every task evaluated, with
    that row of the accuracy matrix (percent; NaN where not evaluated). ``device``: "cpu", "cuda" or
    "auto" (None: where the model's parameters are). ``train_threads``: CPU threads while training, a
    number or "auto" (all the process may use, at most 4, for a model with a convolution; one for an
    MLP, whose single-sample steps gain nothing from more). ``cuda_precision`` ("float32" or "tf32") and
    ``deterministic``: on CUDA, as ``lamaml run --set`` (they set PyTorch's process-wide flags).

    The trained method, with its learned rates and memory, is ``result.method``.
    """
    if on_task_end is not None and not callable(on_task_end):
        raise UserError(f"on_task_end={on_task_end!r}: must be a function (task, accuracy_row)")
    protocol = {"epochs": epochs, "batch_size": batch_size, "glances": glances}
    if isinstance(tasks, Benchmark):
        stream, config = tasks.stream, _benchmark_config(tasks, method, protocol, seed, train_threads, hyperparameters)
    else:
        stream = tasks if isinstance(tasks, TaskStream) else stream_from_data(tasks)
        config = _own_config(method, protocol, seed, train_threads, hyperparameters)
    if cuda_precision not in ("float32", "tf32"):
        raise UserError(f"cuda_precision={cuda_precision!r}: must be 'float32' or 'tf32'")
    target = resolve_device(device) if device is not None else _device_of(model)
    cuda_numerics(target, cuda_precision, deterministic)
    model = model.to(target)
    check_structure(model, method)
    outputs = check_model(model, stream, target)
    if not any(module.training for module in model.modules()):
        warnings.warn("the model is in eval mode (dropout off, batch norm on running statistics) and trains "
                      "so; call model.train() first unless that is meant", stacklevel=2)
    learner = build_learner(config, model, stream)
    if learner.heads is not None and outputs > learner.heads.shape[1]:     # outputs no task uses: never allowed
        spare = torch.zeros(len(learner.heads), outputs - learner.heads.shape[1], dtype=torch.bool)
        learner.use_task_heads(torch.cat([learner.heads.cpu(), spare], dim=1))
    plugins: list[Plugin] = []
    if on_task_end is not None:
        plugins.append(Callbacks(on_task=lambda task, row: on_task_end(task, row.copy())))
    bar = ProgressBar(stream, config, enabled=progress)
    try:
        result = train_as_configured(learner, stream, config, target, [bar, *plugins])
    finally:
        bar.close()
    result.method = learner
    return result


def _device_of(model: torch.nn.Module) -> torch.device:
    """Where ``model`` computes: its first parameter's (or buffer's) device, the CPU for one with neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _benchmark_config(bench: Benchmark, method: str, protocol: dict[str, int | None], seed: int | None,
                      train_threads: int | str | None, hyperparameters: dict[str, Any]):
    """The run ``lamaml run`` would make, with what ``fit`` was given on top (as ``--set``)."""
    overrides = {key: value for key, value in {**protocol, "seed": seed, "train_threads": train_threads}.items()
                 if value is not None}
    try:
        return bench.config(method, **overrides, **hyperparameters)
    except UserError as error:     # the CLI's wording names --set; here they are keyword arguments
        raise UserError(str(error).replace("--set ", "")) from None


def _own_config(method: str, protocol: dict[str, int | None], seed: int | None, train_threads: int | str | None,
                hyperparameters: dict[str, Any]) -> _Protocol:
    defaults = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "glances": GLANCES}
    chosen = {key: defaults[key] if value is None else value for key, value in protocol.items()}
    for key, value in chosen.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{key}={value!r}: must be an integer >= 1")
    threads = None if train_threads == "auto" else train_threads
    for key, value, least, other in (("seed", seed, 0, ""), ("train_threads", threads, 1, " or 'auto'")):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise UserError(f"{key}={value!r}: must be an integer >= {least}{other}")
    try:
        params = method_class(method).Params(**hyperparameters)
    except ValidationError as error:
        first = error.errors()[0]
        known = "" if first["type"] != "extra_forbidden" else \
            f"; {method}'s hyperparameters: {', '.join(method_class(method).Params.model_fields)}"
        raise UserError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}{known}") from None
    return _Protocol(method, params, seed or 0, train_threads=train_threads, **chosen)


def check_structure(model: torch.nn.Module, method: str) -> None:
    """Refuse, before anything runs, what the methods would get silently wrong or fail on mid-run:
    frozen parameters (every method steps every parameter it is given) and BatchNorm under a method
    that runs the model on single samples or under vmap."""
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        listed = ", ".join(frozen[:3]) + (f" and {len(frozen) - 3} more" if len(frozen) > 3 else "")
        raise UserError(f"the model has frozen parameters ({listed}: requires_grad=False); lamaml's methods "
                        f"learn every parameter of the model they are given. Pass the trainable part as the "
                        f"model and apply the frozen part to the inputs first (e.g. precompute its features)")
    norms = batch_norms(model)
    if norms and not method_class(method).supports_batchnorm:
        raise UserError(f"{method} runs the model on single samples or under vmap, where BatchNorm has no batch "
                        f"statistics ({', '.join(norms[:3])}); use GroupNorm or LayerNorm, or a method such as "
                        f"er or ewc")


def check_model(model: torch.nn.Module, stream: TaskStream, device: torch.device) -> int:
    """Try the model on two training samples (in eval mode, without gradients: nothing changes),
    so a mismatch is one UserError naming the shapes rather than a torch error mid-run; return the
    model's number of outputs."""
    task = stream[0]
    x, _ = task.train()
    sample = x[:2]
    if task.prepare is not None:     # a throwaway generator: the run's draws stay as they were
        sample = task.prepare(sample, torch.Generator().manual_seed(0))
    sample = sample.to(device)
    try:
        with torch.no_grad(), eval_mode(model):
            outputs = model(sample)
    except (RuntimeError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"the model does not take inputs of shape {tuple(sample.shape[1:])} per sample "
                        f"({sample.dtype}){_first_layer(model)}: {str(error).splitlines()[0]}") from error
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 2 or len(outputs) != len(sample):
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise UserError(f"the model returned {shape} for a batch of {len(sample)}; "
                        f"it must return logits of shape (batch, outputs)")
    if outputs.shape[1] < stream.n_outputs:
        raise UserError(f"the model has {outputs.shape[1]} outputs but the tasks' labels go up to "
                        f"{stream.n_outputs - 1}; it needs at least {stream.n_outputs}")
    return outputs.shape[1]


def _first_layer(model: torch.nn.Module) -> str:
    """What the model's first layer expects, where it says (", whose first layer Linear takes 784 features")."""
    for module in model.modules():
        for attribute, unit in (("in_features", "features"), ("in_channels", "channels"),
                                ("num_embeddings", "token ids below")):
            if hasattr(module, attribute):
                return f", whose first layer {type(module).__name__} takes {getattr(module, attribute)} {unit}"
    return ""


class ProgressBar(Plugin):
    """A tqdm bar over the run's batches, on stderr, shown only when stderr is a terminal
    (``disable=None``), with the task and the RA so far after each task."""

    def __init__(self, stream: TaskStream, config, enabled: bool = True):
        from tqdm import tqdm
        per_task = [config.epochs * -(-task.n_train // config.batch_size) for task in stream]
        self.tasks = len(stream)
        self.bar = tqdm(total=sum(per_task), unit="batch", desc=config.method, file=sys.stderr,
                        disable=None if enabled else True, dynamic_ncols=True)

    def batch_done(self, run, task, loss):
        self.bar.update(1)

    def task_done(self, run, task, row):
        ra = ra_so_far(row, task)
        self.bar.set_postfix(task=f"{task + 1}/{self.tasks}",
                             **({"ra": f"{ra:.1f}"} if ra is not None else {"acc": f"{row[task]:.1f}"}))

    def close(self) -> None:
        self.bar.close()
