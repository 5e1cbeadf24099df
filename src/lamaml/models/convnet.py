"""The paper's convolutional networks for CIFAR-100 and Tiny ImageNet (the authors' ``pc_cnn``).

[conv 3x3, 160 filters, stride 2, padding 1, ReLU] x (3 for 32x32 images, 4 for 64x64), down to
4x4 maps; flatten 2560 -> FC h -> ReLU -> FC h -> ReLU -> FC n_outputs, with h = 320 (CIFAR) or
640 (Tiny ImageNet). No batch norm, pooling or dropout, so fast weights pass through
``torch.func.functional_call`` unchanged. One shared output layer; each task reads its own
slice of it (task-aware heads, see ``Method.loss``). 1,419,940 and 2,873,640 parameters.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .mlp import INITIALISERS


class ConvNet(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_outputs: int, filters: int = 160,
                 hidden: int | None = None, init: str = "kaiming-normal"):
        super().__init__()
        channels, height, width = input_shape
        if height != width or height < 8 or 2 ** round(math.log2(height)) != height:
            raise ValueError(f"ConvNet needs square images with a power-of-two side >= 8, not {input_shape}")
        n_convs = round(math.log2(height // 4))          # halve the side down to 4x4
        hidden = hidden or (320 if height <= 32 else 640)
        self.convs = nn.ModuleList(nn.Conv2d(channels if i == 0 else filters, filters, 3, stride=2, padding=1)
                                   for i in range(n_convs))
        self.fcs = nn.ModuleList([nn.Linear(filters * 16, hidden), nn.Linear(hidden, hidden),
                                  nn.Linear(hidden, n_outputs)])
        initialise = INITIALISERS[init]
        for layer in [*self.convs, *self.fcs]:
            initialise(layer.weight)
            nn.init.zeros_(layer.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions' output, flattened: the fully connected head's input."""
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        for fc in self.fcs[:-1]:
            x = torch.relu(fc(x))
        return self.fcs[-1](x)
