"""Networks. Any ``nn.Module`` works with every method; these are the paper's."""
from math import prod

from ..errors import UserError
from .mlp import MLP


def build_model(name: str, input_shape: tuple[int, ...], n_outputs: int, init: str = "kaiming-normal"):
    if name == "mlp":
        return MLP(prod(input_shape), (100, 100), n_outputs, init)
    raise UserError(f"unknown model '{name}'; choose from mlp")


__all__ = ["MLP", "build_model"]
