"""The La-MAML family's learner: one meta-update per glance at an incoming batch.

    draw a meta-batch: replay samples + the whole incoming batch
    meta-gradients of the look-ahead (autograd.py, or closed_form.py where it applies)
    [variance reduction: the same look-ahead from the previous weights, combined by update.variance_reduced]
    apply_update (update.py): clip, rates first, then relu(alpha) or beta on the weights

What the variants change is data: their ``Params`` (the authors' values as defaults) and their
``LookaheadOptions``. Weights and rates live in one flat state (state.py) on every path, so the
choice of backend changes speed, never results beyond float rounding.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, replace
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from ..base import COMPUTATION_ONLY, Method, MethodParams, to_device
from ..concurrent import ThreadSplit
from ..replay import ReservoirMemory
from .autograd import AutogradBackend
from .closed_form import ClosedFormMLP
from .stacked import FactoredMLP
from .state import LookaheadState
from .update import MetaGradient, Plan, apply_update, chunk_bounds, variance_reduced


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
    fast_path: bool = Field(True, description="take the closed-form backend where it applies (first order, "
                            "a plain MLP, one shared head); false: always autograd. The same maths either way",
                           json_schema_extra=COMPUTATION_ONLY)
    factored: bool = Field(True, description="on the closed-form path, factor the first layer's inner steps "
                           "(stacked.py: 1.7x faster on MNIST, the seeds of `--seeds` equal to their separate "
                           "runs); false: step every weight (closed_form.py). The same maths either way",
                           json_schema_extra=COMPUTATION_ONLY)


@dataclass(frozen=True)
class LookaheadOptions:
    """What distinguishes the variants (the authors' --learn_lr, --sync_update; model/lamaml.py)."""

    learn_lr: bool        # alpha is meta-learned with SGD(opt_lr)
    sync_update: bool     # weights take an SGD step with scalar opt_wt (beta), not relu(alpha)
    replay_weight_gradient: bool = False   # La-ER: weights follow the plain replay loss, not the meta-loss
    # When a batch enters memory. False: once, at first sight, as lamaml.py and lamaml_cifar.py's
    # push_to_mem. True: after the last glance, on every epoch, as eralg4.py, whose La-ER shares
    # ER's observe.
    push_after_last_glance: bool = False
    # VR-MCL: the weights step along a momentum-based variance-reduced meta-gradient, from a second
    # look-ahead at the previous weights on the same meta-batch (update.variance_reduced). Reads
    # ``vr_momentum`` (r) and ``rate_gradient`` ("both" or "current").
    variance_reduction: bool = False


class LookaheadMetaLearner(Method):
    """Base of the La-MAML family; subclasses set ``options`` and their ``Params``, which declares
    ``opt_lr`` (eta) where the rates are learned and ``opt_wt`` (beta) where the weights' step is
    synchronous: ``apply_update`` reads them, and a variant that lacks one fails when it is defined."""
    supports_batchnorm = False      # single-sample inner steps at look-ahead weights

    options: LookaheadOptions
    Params = LookaheadParams
    own_step = False               # True: the variant replaces ``step`` (Meta-BGD), so it reads neither rate
    state_attributes = ("rates", "memory", "current_task")
    record_fast_weights = False    # keep the last inner loop's end point (figure 6 analysis)
    fast_weights: dict[str, torch.Tensor] | None = None

    previous_weights: torch.Tensor | None = None   # variance reduction: theta_{t-1}, flat
    momentum: torch.Tensor | None = None           # variance reduction: m_{t-1}, flat (None before the first step)

    def __init__(self, model: nn.Module, params: LookaheadParams, generator: torch.Generator):
        super().__init__(model, params, generator)
        self.state = LookaheadState(model, params.alpha_init)
        if self.options.variance_reduction:
            self.previous_weights = self.state.weights.clone()
        self.rates = self.state.rates
        self.weights = self.state.parameters
        self.memory = ReservoirMemory(params.memories, generator, params.reservoir_off_by_one)
        self.replay_source = self.memory
        self.current_task: int | None = None
        self.last_batch = None
        self.backend = self.choose_backend()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        options = getattr(cls, "options", None)
        if options is None or cls.own_step:
            return
        needed = ["opt_lr"] * options.learn_lr + ["opt_wt"] * options.sync_update + \
                 ["vr_momentum", "rate_gradient", "parallel_lookaheads"] * options.variance_reduction
        missing = [key for key in needed if key not in cls.Params.model_fields]
        if missing:
            raise TypeError(f"{cls.__name__}.Params must declare {' and '.join(missing)}: its options "
                            f"(learn_lr={options.learn_lr}, sync_update={options.sync_update}, "
                            f"variance_reduction={options.variance_reduction}) make the update read it")
        if options.variance_reduction and options.replay_weight_gradient:
            raise TypeError(f"{cls.__name__}: variance_reduction combines meta-gradients of the weights; "
                            "replay_weight_gradient replaces them")

    @property
    def alpha(self) -> dict[str, torch.Tensor]:
        """The learned rates by parameter name (views of the flat state)."""
        return self.state.named(self.state.rates)

    def plan(self, batch_size: int) -> Plan:
        return self.plan_with(batch_size, learn_lr=self.options.learn_lr)

    def plan_with(self, batch_size: int, *, learn_lr: bool) -> Plan:
        p = self.params
        return Plan(chunk_bounds(batch_size, p.inner_steps), p.meta_loss == "mean", p.second_order, p.inner_clamp,
                    p.relu_in_inner, learn_lr, not self.options.replay_weight_gradient, self.record_fast_weights)

    def choose_backend(self):
        """The closed form where it holds (and is not switched off), first layer factored where that
        holds too and the meta-batch ends with the incoming batch (``meta_batch``'s own); else autograd."""
        plain_loss = self.heads is None and type(self).loss is Method.loss
        if not self.params.fast_path:
            return AutogradBackend(self.model, self.loss)
        own_meta_batch = type(self).meta_batch is LookaheadMetaLearner.meta_batch
        if self.params.factored and own_meta_batch and \
                FactoredMLP.supports(self.model, self.plan(1), plain_loss=plain_loss):
            return FactoredMLP(self.state)
        if ClosedFormMLP.supports(self.model, self.plan(1), plain_loss=plain_loss):
            return ClosedFormMLP(self.state)
        return AutogradBackend(self.model, self.loss)

    def use_task_heads(self, mask):
        super().use_task_heads(mask)
        self.backend = self.choose_backend()

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

    # -- the engine's contract -------------------------------------------------------------

    def begin_task(self, task: int) -> None:
        if self.params.snapshot_memory and self.current_task is not None:   # the first task replays live memory
            self.replay_source = self.memory.snapshot()
        if self.options.variance_reduction:   # as the authors' begin_task: no step back across a task switch
            self.previous_weights.copy_(self.state.weights)
        self.current_task = task

    def observe(self, x, y, task, *, first_sight):
        order = self.randperm(len(x), x.device)
        x, y = x.index_select(0, order), y.index_select(0, order)
        loss = self.step(x, y, task, first_sight)
        if first_sight and not self.options.push_after_last_glance:   # each sample enters memory once
            self.memory.add(x, y, task)
        self.last_batch = (x, y)
        return loss

    def end_batch(self, x, y, task, *, first_sight):
        if self.options.push_after_last_glance:    # in the order the last glance saw them
            self.memory.add(*self.last_batch, task)

    # -- one meta-update -------------------------------------------------------------------

    def meta_batch(self, x: torch.Tensor, y: torch.Tensor, task: int):
        """Replay samples plus the whole incoming batch, with each sample's task id."""
        tasks = torch.full_like(y, task)
        replay = self.replay_source.sample(self.params.replay_batch_size, self.params.replay_with_replacement)
        if replay is None:
            return x, y, tasks
        return torch.cat([replay[0], x]), torch.cat([replay[1], y]), torch.cat([replay[2], tasks])

    def meta_gradient(self, x, y, task, meta) -> MetaGradient:
        result = self.backend(self.state, (x, y, task), meta, self.plan(len(x)))
        if result.fast is not None:
            self.fast_weights = self.state.named(result.fast)
        return result

    def step(self, x, y, task, first_sight: bool) -> torch.Tensor:
        meta = self.meta_batch(x, y, task)
        previous = None
        if self.options.variance_reduction and self.side_by_side(2, self.params.parallel_lookaheads) > 1:
            result, previous = self.both_lookaheads(x, y, task, meta)
        else:
            result = self.meta_gradient(x, y, task, meta)
        weight_grad, rate_grad = result.weights, result.rates
        if self.options.replay_weight_gradient:   # La-ER: the replay loss at the current weights
            meta_x, meta_y, meta_tasks = meta
            weight_grad = self.state.flatten(self.gradients(self.loss(self.model(meta_x), meta_y, meta_tasks)))
        if self.options.variance_reduction:
            weight_grad, rate_grad = self.variance_reduced(result, x, y, task, meta, previous)
        p = self.params
        apply_update(self.state, weight_grad, rate_grad, clip=p.grad_clip_norm,
                     rate_lr=p.opt_lr if self.options.learn_lr else None,
                     weight_lr=p.opt_wt if self.options.sync_update else None,
                     clip_weights=not self.options.variance_reduction)
        return result.loss

    def variance_reduced(self, current: MetaGradient, x, y, task, meta,
                         previous: MetaGradient | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The look-ahead again from the previous weights theta_{t-1} (the current rates, the same
        inner chunks and meta-batch), unless ``previous`` holds it already (``both_lookaheads``), then
        ``update.variance_reduced``; theta_t becomes the previous weights of the next meta-update."""
        if previous is None:
            # The closed form writes every result into the same buffers: keep the current one apart.
            current = current._replace(weights=current.weights.clone(),
                                       rates=None if current.rates is None else current.rates.clone())
            plan = replace(self.plan(len(x)), keep_fast_weights=False)
            previous = self.backend(self.state.at(self.previous_weights), (x, y, task), meta, plan)
        self.previous_weights.copy_(self.state.weights)
        p = self.params
        self.momentum, rate_grad = variance_reduced(current, previous, self.momentum, ratio=p.vr_momentum,
                                                    clip=p.grad_clip_norm, rates_from_both=p.rate_gradient == "both")
        return self.momentum, rate_grad

    def both_lookaheads(self, x, y, task, meta) -> tuple[MetaGradient, MetaGradient]:
        """Variance reduction's two look-aheads, from theta_t and from theta_{t-1}, side by side on
        worker threads (``side_by_side``); each is the one the sequential path computes."""
        plan = self.plan(len(x))
        previous_state = self.state.at(self.previous_weights)
        with ThreadSplit(2, torch.get_num_threads()) as split:
            current = split.submit(lambda: self.thread_backend()(self.state, (x, y, task), meta, plan))
            previous = split.submit(lambda: self.thread_backend()(previous_state, (x, y, task), meta,
                                                                  replace(plan, keep_fast_weights=False)))
        result = current.result()
        if result.fast is not None:
            self.fast_weights = self.state.named(result.fast)
        return result, previous.result()

    # -- independent meta-gradients side by side (Meta-BGD's draws, VR-MCL's two look-aheads) ----

    def side_by_side(self, jobs: int, enabled: bool) -> int:
        """How many of ``jobs`` independent meta-gradients run at once: one per training thread, up to
        ``jobs``, on a CPU where the backend can run beside itself (autograd, on a copy of a model
        without buffers, which a copy would hold stale); else one. Also one under an active dispatch mode
        (``FlopCounterMode``, a user's tracing mode): modes are per thread, so a worker's operations
        would escape it. Makes the model's template copy, so call it before any job runs."""
        on_cpu = self.state.weights.device.type == "cpu"
        if not (enabled and on_cpu and isinstance(self.backend, AutogradBackend)) or \
                next(self.model.buffers(), None) is not None or _get_current_dispatch_mode() is not None:
            return 1
        workers = max(1, min(torch.get_num_threads(), jobs))
        if workers > 1 and "_model_template" not in self.__dict__:
            self._model_template = copy.deepcopy(self.model)
        return workers

    def thread_backend(self) -> AutogradBackend:
        """The learner's backend on this thread's own copy of the model: functional calls swap a module's
        parameters while they run, so meta-gradients side by side must not share one. Each worker thread
        copies the template (made by ``side_by_side``, never called itself) once and keeps its copy; the
        backend is copied anew each time, so it follows the learner's."""
        copies = self.__dict__.setdefault("_thread_models", {})
        model = copies.get(threading.get_ident())
        if model is None:
            model = copies[threading.get_ident()] = copy.deepcopy(self._model_template)
        twin = copy.copy(self.backend)
        twin.model = model
        return twin
