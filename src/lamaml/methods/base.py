"""The contract every method keeps, and the registry the engine builds methods from.

A method sees one incoming batch at a time through ``observe`` and answers ``predict``; it never
prints, never touches files, and draws randomness only from the generator it is handed.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class MethodParams(BaseModel):
    """Hyperparameters of a method; each method declares its own subclass."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Method:
    """Base class: holds the network, the generator and the loss. Subclasses write ``observe``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    joint: ClassVar[bool] = False      # True: trained once on all tasks together (the IID oracle)

    def __init__(self, model: nn.Module, params: MethodParams, generator: torch.Generator):
        self.model = model
        self.params = params
        self.generator = generator

    def observe(self, x: torch.Tensor, y: torch.Tensor, task: int, *, epoch: int, glance: int) -> torch.Tensor:
        """Learn from one incoming batch (one glance at it); return the loss, detached."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.model(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy; ``task`` (one id, or one per sample) is for benchmarks with task heads."""
        return F.cross_entropy(logits, y)

    def gradients(self, loss: torch.Tensor, clip: float | None = None) -> list[torch.Tensor]:
        """Gradients of ``loss`` w.r.t. the model's parameters, clipped by global norm if asked."""
        grads = list(torch.autograd.grad(loss, list(self.model.parameters())))
        if clip is not None:
            clip_global_norm_(grads, clip)
        return grads

    def randperm(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator).to(device, non_blocking=True)


def clip_global_norm_(tensors: list[torch.Tensor], max_norm: float | None) -> None:
    """In place, as ``torch.nn.utils.clip_grad_norm_`` (same 1e-6 guard), without host syncs."""
    if max_norm is None or not tensors:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(tensors, scale)


class SGDParams(MethodParams):
    lr: float = Field(0.01, gt=0, allow_inf_nan=False, description="SGD learning rate")
    grad_clip_norm: float | None = Field(None, gt=0, allow_inf_nan=False,
                                         description="global L2 clip of each gradient; null disables")


class SGDMethod(Method):
    """A method whose weights take plain SGD steps: Online, EWC, GEM, A-GEM, ER, MER."""

    Params = SGDParams

    def sgd_step(self, grads: list[torch.Tensor], lr: float | None = None) -> None:
        with torch.no_grad():
            torch._foreach_add_(list(self.model.parameters()), grads, alpha=-(lr or self.params.lr))


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls
