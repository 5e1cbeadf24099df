"""The meta-gradient by autograd through the look-ahead: any model, first or second order, task heads.

    theta_0 = current weights
    for each inner step i (a chunk of the incoming batch):
        g_i = grad of loss(chunk_i; theta_i)             (detached unless second order)
        theta_{i+1} = theta_i - lr(alpha) * g_i
        meta_loss_i = loss(meta-batch; theta_{i+1})
    meta_loss = mean of the meta_loss_i (authors' code) or the last one (textbook MAML)

The meta-loss is a pure function of name-keyed weight and rate dicts, applied through
``torch.func.functional_call``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from .state import LookaheadState
from .update import MetaGradient, Plan


class AutogradBackend:
    name = "autograd"

    def __init__(self, model: nn.Module, loss: Callable[..., torch.Tensor]):
        self.model, self.loss = model, loss
        # Weights are passed under each parameter's first name only, so a model that shares a parameter
        # between modules needs functional_call to tie its other names; for any other model that
        # resolution is pure overhead (0.9 ms a meta-update on the MNIST MLP).
        self.tied = len(list(model.named_parameters(remove_duplicate=False))) > len(list(model.named_parameters()))

    def forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, weights, (x,), tie_weights=self.tied)

    def meta_loss(self, weights, rates, batch, meta, plan: Plan) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The look-ahead from ``weights`` as a differentiable graph; also the weights it reached."""
        (x, y, task), (meta_x, meta_y, meta_tasks) = batch, meta
        if plan.relu_in_inner:
            rates = {name: torch.relu(a) for name, a in rates.items()}
        fast, losses = weights, []
        for start, stop in plan.chunks:
            inner_loss = self.loss(self.forward(fast, x[start:stop]), y[start:stop], task)
            grads = torch.autograd.grad(inner_loss, list(fast.values()), create_graph=plan.second_order)
            if plan.inner_clamp is not None:
                grads = [g.clamp(-plan.inner_clamp, plan.inner_clamp) for g in grads]
            fast = {name: w - rates[name] * g for (name, w), g in zip(fast.items(), grads)}
            if plan.mean_over_steps or stop == len(x):
                losses.append(self.loss(self.forward(fast, meta_x), meta_y, meta_tasks))
        return torch.stack(losses).mean(), fast

    def __call__(self, state: LookaheadState, batch, meta, plan: Plan) -> MetaGradient:
        weights = state.parameters
        rates = {name: view.detach().requires_grad_(plan.learn_rates)
                 for name, view in state.named(state.rates).items()}
        loss, fast = self.meta_loss(weights, rates, batch, meta, plan)
        targets = (list(weights.values()) if plan.weight_gradient else []) + \
                  (list(rates.values()) if plan.learn_rates else [])
        grads = torch.autograd.grad(loss, targets)
        n = len(weights) if plan.weight_gradient else 0
        weight_grad = state.flatten(grads[:n]) if plan.weight_gradient else None
        rate_grad = state.flatten(grads[n:]) if plan.learn_rates else None
        fast = state.flatten([w.detach() for w in fast.values()]) if plan.keep_fast_weights else None
        return MetaGradient(loss.detach(), weight_grad, rate_grad, fast)
