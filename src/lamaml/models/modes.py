"""A model's train/eval mode for the length of a measurement, and the layers whose output depends on
the rest of their batch."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode (dropout off, batch norm on its running statistics), then each module
    back in its own previous mode: a user's model may keep some modules frozen in eval mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def batch_norms(model: torch.nn.Module) -> list[str]:
    """The names of ``model``'s batch-norm layers: in training they normalise with their batch's
    statistics, so an input's output depends on the rest of its batch (also without running statistics,
    ``track_running_stats=False``, when such a layer has no buffers). Instance norm is per sample."""
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)
            and not isinstance(m, torch.nn.modules.instancenorm._InstanceNorm)]
