"""Networks. Any ``nn.Module`` works with every method; these are the paper's."""
from math import prod

from ..errors import UserError
from .convnet import ConvNet
from .mlp import MLP

MODELS = ("mlp", "pc-cnn")


def build_model(name: str, input_shape: tuple[int, ...], n_outputs: int, init: str = "kaiming-normal"):
    if name == "mlp":
        return MLP(prod(input_shape), (100, 100), n_outputs, init)
    if name == "pc-cnn":
        if len(input_shape) != 3:
            raise UserError(f"model pc-cnn needs images (channels, height, width), not inputs of shape {input_shape}")
        return ConvNet(input_shape, n_outputs, init=init)
    raise UserError(f"unknown model '{name}'; choose from {', '.join(MODELS)}")


__all__ = ["MLP", "ConvNet", "MODELS", "build_model"]
