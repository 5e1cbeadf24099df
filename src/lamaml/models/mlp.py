"""The paper's MNIST network: 784-100-100-10 with ReLU."""
from __future__ import annotations

import torch
from torch import nn


def kaiming_normal_gain1_(weight: torch.Tensor) -> torch.Tensor:
    """N(0, 1/fan_in): the gain the authors' learner.py comment names ("gain=1 according to cbfinn's
    implementation") where its call, kaiming_normal_, uses sqrt 2."""
    return nn.init.kaiming_normal_(weight, nonlinearity="linear")


# Weight initialisers by config name; biases start at zero with every one of them.
INITIALISERS = {"kaiming-normal": nn.init.kaiming_normal_, "kaiming-normal-gain1": kaiming_normal_gain1_,
                "xavier-uniform": nn.init.xavier_uniform_, "xavier-normal": nn.init.xavier_normal_}


class MLP(nn.Module):
    """A plain ``nn.Module``; fast weights go through ``torch.func.functional_call``.

    ``init="kaiming-normal"`` is the La-MAML ``Learner``'s (fan-in, gain sqrt 2); ``"xavier-uniform"``
    (gain 1) is the GEM/MER ``common.MLP`` that the paper's MNIST baselines ran with. Biases start
    at zero either way. 89,610 parameters for the MNIST sizes.
    """

    def __init__(self, n_inputs: int = 784, hidden: tuple[int, ...] = (100, 100), n_outputs: int = 10,
                 init: str = "kaiming-normal"):
        super().__init__()
        sizes = [n_inputs, *hidden, n_outputs]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        initialise = INITIALISERS[init]
        for layer in self.layers:
            initialise(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)
