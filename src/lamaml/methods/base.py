"""The contract every method keeps, and the registry the engine builds methods from.

A method sees one incoming batch at a time through ``observe`` and answers ``predict``; it never
prints, never touches files, and draws randomness only from the generator it is handed.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn


class MethodParams(BaseModel):
    """Hyperparameters of a method; each method declares its own subclass."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Method:
    """Base class: holds the network, the generator and the loss. Subclasses write ``observe``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams

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

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def randperm(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator).to(device, non_blocking=True)


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls
