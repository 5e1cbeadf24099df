"""The state of a look-ahead learner: its weights and its learning rates, each one flat buffer.

The model's parameters become views of ``weights``, and ``rates`` holds one learning rate per
weight in the same layout, so an update is one operation over every number whatever the network,
and both read by name through ``named``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def split_views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Views of ``flat`` shaped as the tensors of ``like``, in order."""
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def flatten_parameters_(model: nn.Module) -> torch.Tensor:
    """Move the model's parameters into one flat buffer; each parameter becomes a view of it."""
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    for p, view in zip(params, split_views(flat, params)):
        p.data = view
    return flat


class LookaheadState:
    """``weights`` (the model's parameters, flat) and ``rates`` (alpha, one per weight, flat)."""

    def __init__(self, model: nn.Module, alpha_init: float):
        self.parameters = dict(model.named_parameters())   # leaves of autograd, views of ``weights``
        self.weights = flatten_parameters_(model)
        self.rates = torch.full_like(self.weights, alpha_init)

    def at(self, weights: torch.Tensor, rates: torch.Tensor | None = None) -> "LookaheadState":
        """The same rates (or ``rates``) at other weights (flat, not the model's): autograd leaves of
        their own, for a meta-gradient at another iterate (VR-MCL's previous weights, a Meta-BGD draw)."""
        other = copy.copy(self)
        other.weights = weights
        other.rates = self.rates if rates is None else rates
        other.parameters = {name: view.detach().requires_grad_() for name, view in self.named(weights).items()}
        return other

    def named(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``flat`` (weights, rates or a gradient of them) as views keyed by parameter name."""
        return dict(zip(self.parameters, split_views(flat, list(self.parameters.values()))))

    def flatten(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Per-parameter tensors (in parameter order) as one flat tensor."""
        return torch.cat([t.reshape(-1) for t in tensors])
