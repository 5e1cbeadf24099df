"""EWC: elastic weight consolidation (Kirkpatrick et al. 2017), as in the GEM and MER code.

At each task switch the diagonal Fisher of the finished task is estimated from its first
``n_memories`` samples and the weights are anchored there; every later step adds
sum over past tasks of memory_strength * F * (theta - theta*)^2 to the loss (mattriemer/MER, model/ewc.py).

The sum over past tasks is kept as one quadratic, sum_k F_k (theta - theta*_k)^2 =
A theta^2 - 2 B theta + C with A = sum F_k, B = sum F_k theta*_k, C = sum F_k theta*_k^2, so a
step costs the same after 100 tasks as after one.

``fisher="batch"`` (default, the GEM/MER code) squares the gradient of the mean loss over those
samples; ``fisher="empirical"`` averages the squared per-sample gradients, the textbook estimate.
"""
from typing import Literal

import torch
from pydantic import Field

from .base import SGDMethod, SGDParams, register


class EWCParams(SGDParams):
    n_memories: int = Field(10, ge=1, description="samples per task used to estimate the Fisher")
    memory_strength: float = Field(100.0, ge=0, allow_inf_nan=False, description="penalty weight")
    fisher: Literal["batch", "empirical"] = Field("batch", description="Fisher estimate (see docstring)")


@register
class EWC(SGDMethod):
    name = "ewc"
    summary = "EWC: quadratic penalty weighted by each past task's diagonal Fisher"
    Params = EWCParams
    state_attributes = ("anchors", "quadratic", "current_task", "task_x", "task_y")

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.anchors: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []   # (fisher, theta*) per task
        self.quadratic: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (A, B, C) per parameter
        self.current_task = None
        self.task_x = self.task_y = None

    def penalty(self) -> torch.Tensor:
        total = 0.0
        for p, (A, B, C) in zip(self.model.parameters(), self.quadratic):
            total = total + (A * p * p - 2 * B * p + C).sum()
        return self.params.memory_strength * total

    def consolidate(self) -> None:
        """Anchor the weights at the end of a task, weighted by the Fisher on its first samples."""
        x, y = self.task_x, self.task_y
        if self.params.fisher == "batch":
            fisher = [g.pow(2) for g in self.gradients(self.loss(self.model(x), y, self.current_task))]
        else:
            squares = [self.gradients(self.loss(self.model(x[i:i + 1]), y[i:i + 1], self.current_task))
                       for i in range(len(x))]
            fisher = [torch.stack(per_param).pow(2).mean(0) for per_param in zip(*squares)]
        anchor = [p.detach().clone() for p in self.model.parameters()]
        fisher = [f.detach() for f in fisher]
        self.anchors.append((fisher, anchor))
        terms = [(f, f * a, f * a * a) for f, a in zip(fisher, anchor)]
        self.quadratic = terms if not self.quadratic else [
            tuple(old + new for old, new in zip(olds, news)) for olds, news in zip(self.quadratic, terms)]

    def remember(self, x, y) -> None:
        if self.task_x is None:
            self.task_x, self.task_y = x[:self.params.n_memories].clone(), y[:self.params.n_memories].clone()
        elif len(self.task_x) < self.params.n_memories:
            self.task_x = torch.cat([self.task_x, x])[:self.params.n_memories]
            self.task_y = torch.cat([self.task_y, y])[:self.params.n_memories]

    def begin_task(self, task):
        self.current_task, self.task_x, self.task_y = task, None, None

    def end_batch(self, x, y, task, *, first_sight):
        self.remember(x, y)      # once per batch, however many glances

    def end_task(self, task):
        self.consolidate()

    def observe(self, x, y, task, *, first_sight):
        loss = self.loss(self.model(x), y, task)
        total = loss + self.penalty() if self.anchors else loss
        self.sgd_step(self.gradients(total, self.params.grad_clip_norm))
        return loss.detach()
