"""The Python API: La-MAML (or any method) on your own model and your own tasks.

    import lamaml
    result = lamaml.fit(my_model, [(train_0, test_0), (train_1, test_1)], method="la-maml",
                        glances=5, alpha_init=0.15, opt_lr=0.3)
    print(result.ra, result.bti, result.acc_matrix)

Each task is ``(train, test)``, each of which is an ``(inputs, labels)`` pair of tensors or a
Dataset of ``(x, y)`` pairs.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from pydantic import ValidationError

from .data import TaskStream, stream_from_data
from .engine import StreamResult, build_method, derived_seeds, resolve_device, train
from .errors import UserError
from .methods import method_class


def fit(model: torch.nn.Module, tasks: Sequence[Any] | TaskStream, method: str = "la-maml", *,
        epochs: int = 1, batch_size: int = 10, glances: int = 1, seed: int = 0, device: str = "cpu",
        train_threads: int | None = 1, **hyperparameters: Any) -> StreamResult:
    """Train ``model`` on ``tasks`` in order with ``method``; returns the accuracy matrix and metrics.

    ``hyperparameters`` are the method's (see ``lamaml list``); the trained method, with its
    learned rates and memory, is ``result.method``.
    """
    stream = tasks if isinstance(tasks, TaskStream) else stream_from_data(tasks)
    for name, value in {"epochs": epochs, "batch_size": batch_size, "glances": glances}.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name}={value!r}: must be an integer >= 1")
    try:
        params = method_class(method).Params(**hyperparameters)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    target = resolve_device(device)
    model = model.to(target)
    _check_outputs(model, stream, target)
    seeds = derived_seeds(seed)
    learner = build_method(method, model, params, seeds["method"])
    result = train(learner, stream, epochs=epochs, batch_size=batch_size, glances=glances,
                   generator=torch.Generator().manual_seed(seeds["order"]), device=target,
                   train_threads=train_threads if target.type == "cpu" else None)
    result.method = learner
    return result


def _check_outputs(model: torch.nn.Module, stream: TaskStream, device: torch.device) -> None:
    x, _ = stream[0].train()
    with torch.no_grad():
        outputs = model(x[:1].to(device)).shape[-1]
    if outputs < stream.n_outputs:
        raise UserError(f"the model has {outputs} outputs but the tasks' labels go up to "
                        f"{stream.n_outputs - 1}; it needs at least {stream.n_outputs}")
