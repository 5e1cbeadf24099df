"""What kind of computation a model is, where a run's settings depend on it."""
from __future__ import annotations

import torch


def has_convolutions(model: torch.nn.Module) -> bool:
    """Whether any module of ``model`` is a convolution (the vision nets, or a user's conv net)."""
    return any(isinstance(module, torch.nn.modules.conv._ConvNd) for module in model.modules())
