"""The functional core shared by La-MAML, C-MAML, Sync La-MAML and La-ER.

One meta-update (Gupta et al. 2020, Algorithm 1; la-maml-reference section 2.4):

    draw a meta-batch: replay samples + the whole incoming batch
    theta_0 = current weights
    for each inner step i (a chunk of the incoming batch; one sample per step on MNIST):
        g_i = grad of loss(chunk_i; theta_i)             (detached unless second order)
        theta_{i+1} = theta_i - lr(alpha) * g_i
        meta_loss_i = loss(meta-batch; theta_{i+1})
    meta_loss = mean of the meta_loss_i (authors' code) or the last one (textbook MAML)
    meta-gradients w.r.t. theta_0 and alpha, clipped by global norm separately
    alpha <- alpha - eta * grad_alpha                       (if rates are learned)
    theta <- theta - relu(alpha) * grad_theta  (La-MAML)   or  theta - beta * grad_theta (Sync, C-MAML)

Weights and learning rates are dicts keyed by parameter name, applied through
``torch.func.functional_call``, so any ``nn.Module`` works. What the variants change is data:
``LookaheadOptions``. Every switch that changes results is a hyperparameter with the authors'
MNIST value as default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call

from .base import Method, MethodParams, clip_global_norm_, to_device
from .fused import FusedMLPMetaGradient, can_fuse, flatten_parameters_, views
from .replay import ReservoirMemory


class LookaheadParams(MethodParams):
    memories: int = Field(200, ge=0, description="replay memory slots (reservoir)")
    replay_batch_size: int = Field(10, ge=0, description="replay samples in each meta-batch")
    alpha_init: float = Field(0.15, ge=0, allow_inf_nan=False,
                              description="initial value of every per-parameter learning rate")
    grad_clip_norm: float | None = Field(2.0, gt=0, allow_inf_nan=False,
                                         description="global L2 clip of the meta-gradients, weights "
                                                     "and rates clipped separately; null disables")
    inner_clamp: float | None = Field(None, gt=0, allow_inf_nan=False,
                                      description="element-wise clamp of inner gradients (the "
                                                  "authors' CIFAR code; their MNIST clamp is a no-op)")
    relu_in_inner: bool = Field(True, description="inner step uses relu(alpha) (MNIST code) "
                                                  "or raw alpha (CIFAR code)")
    second_order: bool = Field(False, description="back-propagate through the inner gradients")
    meta_loss: Literal["mean", "last"] = Field("mean", description="average the meta-loss over "
                                               "every inner step (authors' code) or take the last")
    inner_steps: int | None = Field(None, ge=1, description="inner steps per meta-update; null: one "
                                    "per incoming sample (MNIST code); k: chunks of ceil(B/k)")
    replay_with_replacement: bool = Field(True, description="draw replay samples with replacement "
                                                             "(authors' code)")
    reservoir_off_by_one: bool = Field(False, description="reproduce the authors' reservoir, which "
                                       "keeps the n-th sample with probability M/(n+1), not M/n")
    snapshot_memory: bool = Field(False, description="from the second task on, replay from a copy of memory "
                                  "frozen at the task switch; the first task replays the live memory "
                                  "(--use_old_task_memory of the CIFAR code, whose getBatch reads live memory "
                                  "while t == 0)")
    fast_path: bool = Field(True, description="first-order meta-gradients of the MLP in closed form on flat "
                            "buffers (fused.py); false: the autograd reference path. Used only where it "
                            "applies (MLP, first order, not La-ER); the same maths either way")


@dataclass(frozen=True)
class LookaheadOptions:
    """What distinguishes the variants (la-maml-reference section 2.6)."""

    learn_lr: bool        # alpha is meta-learned with SGD(eta)
    sync_update: bool     # weights take an SGD step with scalar beta, not relu(alpha)
    replay_weight_gradient: bool = False   # La-ER: weights follow the plain replay loss, not the meta-loss
    # When a batch enters memory. False: once, at first sight (epoch 0, glance 0), as lamaml.py and
    # lamaml_cifar.py's push_to_mem. True: after the last glance of every call, on every epoch, as
    # eralg4.py, whose La-ER shares ER's observe.
    push_after_last_glance: bool = False
    # The method pushes inside its own update (Meta-BGD, after its first Monte-Carlo draw at first sight).
    push_in_update: bool = False


def chunk_bounds(batch_size: int, inner_steps: int | None) -> list[tuple[int, int]]:
    """Inner-step slices of the incoming batch: one sample each, or ceil(B/k)-sized chunks."""
    if inner_steps is None:
        return [(i, i + 1) for i in range(batch_size)]
    size = math.ceil(batch_size / inner_steps)
    return [(i * size, min((i + 1) * size, batch_size)) for i in range(inner_steps) if i * size < batch_size]


class LookaheadMetaLearner(Method):
    """Base of the La-MAML family; subclasses set ``options`` and their ``Params``."""

    options: LookaheadOptions
    Params = LookaheadParams
    state_attributes = ("alpha", "memory", "current_task")
    record_fast_weights = False    # keep the last inner loop's end point (figure 6 analysis)
    fusable = True                 # may take fused.py's closed form where it applies
    fast_weights: dict[str, torch.Tensor] | None = None

    def __init__(self, model: nn.Module, params: LookaheadParams, generator: torch.Generator):
        super().__init__(model, params, generator)
        self.fused: FusedMLPMetaGradient | None = None
        if (self.fusable and params.fast_path and not params.second_order and not self.options.replay_weight_gradient
                and can_fuse(model) and type(self).loss is Method.loss):
            flat = flatten_parameters_(model)
            self.flat_alpha = torch.full_like(flat, params.alpha_init)
            self.fused = FusedMLPMetaGradient(model, flat)
        self.weights = dict(model.named_parameters())
        if self.fused is not None:   # the rates are views of one flat buffer too
            self.alpha = dict(zip(self.weights, views(self.flat_alpha, list(self.weights.values()))))
        else:
            self.alpha = {name: torch.full_like(w, params.alpha_init, requires_grad=self.options.learn_lr)
                          for name, w in self.weights.items()}
        self.memory = ReservoirMemory(params.memories, generator, params.reservoir_off_by_one)
        self.replay_source = self.memory
        self.current_task: int | None = None

    def use_task_heads(self, mask):
        super().use_task_heads(mask)
        if mask is not None and self.fused is not None:   # the closed form has one shared softmax
            self.fused = None
            self.alpha = {name: a.detach().clone().requires_grad_(self.options.learn_lr)
                          for name, a in self.alpha.items()}

    def state_dict(self):
        state = super().state_dict()
        state["replay_source"] = None if self.replay_source is self.memory else self.replay_source.state_dict()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.replay_source = self.memory
        if state["replay_source"] is not None:
            self.replay_source = ReservoirMemory(self.params.memories, self.generator)
            device = next(self.model.parameters()).device
            self.replay_source.load_state_dict(to_device(state["replay_source"], device))

    # -- the pieces of one meta-update, in the order they happen ---------------------------

    def begin_task_if_new(self, task: int) -> None:
        if task != self.current_task:
            first_task = self.current_task is None
            self.current_task = task
            if self.params.snapshot_memory and not first_task:   # a snapshot at the first task would be empty
                self.replay_source = self.memory.snapshot()

    def meta_batch(self, x: torch.Tensor, y: torch.Tensor, task: int):
        """Replay samples plus the whole incoming batch, with each sample's task id."""
        tasks = torch.full_like(y, task)
        replay = self.replay_source.sample(self.params.replay_batch_size, self.params.replay_with_replacement)
        if replay is None:
            return x, y, tasks
        return torch.cat([replay[0], x]), torch.cat([replay[1], y]), torch.cat([replay[2], tasks])

    def forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        # tie_weights=False: we pass every parameter by name, so tie resolution is pure overhead.
        return functional_call(self.model, weights, (x,), tie_weights=False)

    def inner_rates(self) -> dict[str, torch.Tensor]:
        if self.params.relu_in_inner:
            return {name: torch.relu(a) for name, a in self.alpha.items()}
        return self.alpha

    def look_ahead(self, x, y, task, meta_x, meta_y, meta_tasks) -> torch.Tensor:
        """Inner steps from the current weights; returns the meta-loss as a differentiable graph."""
        fast = self.weights
        rates = self.inner_rates()
        meta_losses = []
        for start, stop in chunk_bounds(len(x), self.params.inner_steps):
            inner_loss = self.loss(self.forward(fast, x[start:stop]), y[start:stop], task)
            grads = torch.autograd.grad(inner_loss, list(fast.values()),
                                        create_graph=self.params.second_order)
            if self.params.inner_clamp is not None:
                c = self.params.inner_clamp
                grads = [g.clamp(-c, c) for g in grads]
            fast = {name: w - rates[name] * g
                    for (name, w), g in zip(fast.items(), grads)}
            if self.params.meta_loss == "mean" or stop == len(x):
                meta_losses.append(self.loss(self.forward(fast, meta_x), meta_y, meta_tasks))
        if self.record_fast_weights:
            self.fast_weights = {name: w.detach() for name, w in fast.items()}
        return torch.stack(meta_losses).mean()

    def update_rates(self, grads: list[torch.Tensor]) -> None:
        with torch.no_grad():
            torch._foreach_add_(list(self.alpha.values()), grads, alpha=-self.params.opt_lr)

    def update_weights(self, grads: list[torch.Tensor]) -> None:
        with torch.no_grad():
            weights = list(self.weights.values())
            if self.options.sync_update:
                torch._foreach_add_(weights, grads, alpha=-self.params.opt_wt)
            else:
                rates = [torch.relu(a) for a in self.alpha.values()]
                torch._foreach_addcmul_(weights, grads, rates, value=-1.0)

    # -- one glance at an incoming batch ----------------------------------------------------

    def observe(self, x, y, task, *, epoch, glance):
        self.begin_task_if_new(task)
        self.first_sight = epoch == 0 and glance == 0
        order = self.randperm(len(x), x.device)
        x, y = x[order], y[order]
        meta_x, meta_y, meta_tasks = self.meta_batch(x, y, task)
        if self.fused is not None:
            meta_loss = self.fused_meta_update(x, y, meta_x, meta_y)
        else:
            meta_loss = self.reference_meta_update(x, y, task, meta_x, meta_y, meta_tasks)
        if self.options.push_after_last_glance:
            if glance == self.glances - 1:
                self.memory.add(x, y, task)
        elif epoch == 0 and glance == 0 and not self.options.push_in_update:   # each sample enters memory once
            self.memory.add(x, y, task)
        return meta_loss.detach()

    def fused_meta_update(self, x, y, meta_x, meta_y) -> torch.Tensor:
        """The same update as ``reference_meta_update``, from the closed form of fused.py."""
        p = self.params
        alpha, weights = self.flat_alpha, self.fused.theta0
        rates = torch.relu(alpha) if p.relu_in_inner else alpha
        meta_loss, weight_grad, rate_grad = self.fused(
            rates, x, y, meta_x, meta_y, chunk_bounds(len(x), p.inner_steps),
            mean_over_steps=p.meta_loss == "mean", learn_rates=self.options.learn_lr,
            rate_mask=torch.sign(rates) if p.relu_in_inner else None, inner_clamp=p.inner_clamp)
        if self.record_fast_weights:
            self.fast_weights = dict(zip(self.weights, views(self.fused.fast.clone(), list(self.weights.values()))))
        clip_global_norm_([weight_grad], p.grad_clip_norm)
        if self.options.learn_lr:
            clip_global_norm_([rate_grad], p.grad_clip_norm)
            alpha.add_(rate_grad, alpha=-p.opt_lr)   # rates first: the weights step uses the new rates
        if self.options.sync_update:
            weights.add_(weight_grad, alpha=-p.opt_wt)
        else:
            weights.addcmul_(torch.relu(alpha), weight_grad, value=-1.0)
        return meta_loss

    def reference_meta_update(self, x, y, task, meta_x, meta_y, meta_tasks) -> torch.Tensor:
        """Autograd through the look-ahead: any model, first or second order."""
        meta_loss = self.look_ahead(x, y, task, meta_x, meta_y, meta_tasks)
        targets = list(self.weights.values()) + (list(self.alpha.values()) if self.options.learn_lr else [])
        grads = list(torch.autograd.grad(meta_loss, targets))
        weight_grads, rate_grads = grads[:len(self.weights)], grads[len(self.weights):]
        clip_global_norm_(weight_grads, self.params.grad_clip_norm)
        clip_global_norm_(rate_grads, self.params.grad_clip_norm)

        if self.options.learn_lr:
            self.update_rates(rate_grads)      # rates first: the weights step uses the new rates
        if self.options.replay_weight_gradient:
            replay_loss = self.loss(self.model(meta_x), meta_y, meta_tasks)
            weight_grads = self.gradients(replay_loss, self.params.grad_clip_norm)
        self.update_weights(weight_grads)
        return meta_loss
