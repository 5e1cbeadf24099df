"""Several seeds of one La-MAML-family run as one computation (``lamaml run --seeds 0-4``).

Each seed keeps its own learner (``LookaheadMetaLearner``): its generator, its replay memory, its
model. What the seeds share is the arithmetic: their weights and rates are rows of two (S, P)
buffers (each learner's flat state and its model's parameters become views of its row), and
``stacked.StackedClosedForm`` computes every seed's meta-gradients at once. ``observe`` does for
each seed what ``LookaheadMetaLearner.observe`` does, drawing from the seed's own generator in the
same order: the batch's random order, the replay draws, then (at first sight) the memory's
reservoir draws. ``_update`` is ``update.apply_update`` for every seed, each clipped by the global
norm of its own meta-gradient. A separate run computes with the same class for its one seed
(``stacked.FactoredMLP``), so a seed's meta-updates equal its separate run's to the bit, in float32
too, when both train on one thread, as ``train_threads: auto`` has them do (``engine/threads.py``;
tests/test_seeds.py). Two threads split MKL's sums differently unless ``MKL_CBWR=AUTO,STRICT``.
Batching saves dispatch, not arithmetic: a seed's meta-update on MNIST is already bound by its small
products, so S seeds take about S times one seed's time (BENCHMARKS.md).

Only learners whose meta-update is exactly the base class's on the closed-form backend qualify
(``unsupported`` says why not); the run then takes the seeds one after another.
"""
from __future__ import annotations

import torch

from .closed_form import ClosedFormMLP
from .learner import LookaheadMetaLearner
from .stacked import FactoredMLP, StackedClosedForm, seed_buffer
from .state import split_views
from .update import clip_rows_

# What a learner may not override for its seeds to be batched: the whole meta-update.
_BASE_STEPS = ("observe", "step", "meta_batch", "meta_gradient", "end_batch", "begin_task", "plan", "plan_with",
               "variance_reduced")


def unsupported(learners: list) -> str | None:
    """Why these learners cannot be batched (None: they can)."""
    if not learners:
        return "no seeds"
    first = learners[0]
    if not isinstance(first, LookaheadMetaLearner):
        return f"{getattr(first, 'name', type(first).__name__)} is not a La-MAML-family learner"
    if any(type(learner) is not type(first) for learner in learners):
        return "the seeds' methods differ"
    if first.options.variance_reduction:
        return f"{first.name} takes a second look-ahead from the previous weights (variance reduction)"
    cls = type(first)
    overridden = [name for name in _BASE_STEPS if getattr(cls, name) is not getattr(LookaheadMetaLearner, name)]
    if overridden or cls.own_step:
        return f"{first.name} changes the look-ahead update ({', '.join(overridden) or 'its own step'})"
    if first.options.replay_weight_gradient:
        return f"{first.name}'s weights follow the replay loss (autograd backend)"
    if not all(isinstance(learner.backend, (ClosedFormMLP, FactoredMLP)) for learner in learners):
        return f"{first.name} runs on the autograd backend here (second order, task heads, a model " \
               f"that is not a plain MLP, or fast_path=false)"
    if first.params.inner_clamp is not None:
        return "inner_clamp clamps each inner gradient element-wise (the batched form needs them unclamped)"
    if len(first.state.parameters) < 4:
        return "the network has one layer (the batched form needs a hidden layer)"
    if not all(isinstance(learner.backend, FactoredMLP) for learner in learners):
        return f"{first.name} steps every first-layer weight here (factored=false), and its separate runs " \
               f"would too: the batched form factors them"
    if any(learner.record_fast_weights for learner in learners):
        return "the fast-weights analysis records each seed's fast weights"
    if any(learner.params != first.params for learner in learners):
        return "the seeds' hyperparameters differ"
    shapes = [[tuple(p.shape) for p in learner.state.parameters.values()] for learner in learners]
    if any(s != shapes[0] for s in shapes) or len({(learner.state.weights.dtype, learner.state.weights.device)
                                                   for learner in learners}) != 1:
        return "the seeds' networks differ in shape, dtype or device"
    return None


class BatchedLookahead:
    """S look-ahead learners of one configuration trained in lock step as one computation.

    ``observe`` and ``end_batch`` take one batch per seed (lists) and do, for every seed, what
    that seed's own ``observe`` and ``end_batch`` would; ``begin_task``, ``end_task`` and
    ``predict`` stay each learner's own, whose model reads its row of the stacked weights.
    """

    def __init__(self, learners: list[LookaheadMetaLearner]):
        reason = unsupported(learners)
        if reason:
            raise ValueError(f"these learners cannot be batched: {reason}")
        self.learners = learners
        first = learners[0].state.weights
        self.weights, self.rates = (seed_buffer(len(learners), first.shape, first.dtype, first.device)
                                    for _ in range(2))
        for k, learner in enumerate(learners):
            state = learner.state
            self.weights[k].copy_(state.weights)
            self.rates[k].copy_(state.rates)
            params = list(state.parameters.values())
            for param, view in zip(params, split_views(self.weights[k], params)):
                param.data = view
            state.weights, state.rates = self.weights[k], self.rates[k]
            learner.rates = state.rates
        self.backend = StackedClosedForm(self.weights, [p.shape for p in learners[0].state.parameters.values()])

    @torch.no_grad()
    def observe(self, xs: list[torch.Tensor], ys: list[torch.Tensor], task: int, *, first_sight: bool) -> torch.Tensor:
        """One glance of every seed at its batch; returns each seed's meta-loss, (S,)."""
        batches, metas = [], []
        for learner, x, y in zip(self.learners, xs, ys):
            order = learner.randperm(len(x), x.device)
            x, y = x.index_select(0, order), y.index_select(0, order)
            batches.append((x, y))
            metas.append(learner.meta_batch(x, y, task))
        first = self.learners[0]
        loss, weight_grad, rate_grad = self.backend(self.weights, self.rates, batches, metas,
                                                    first.plan(len(batches[0][0])))
        p = first.params
        self._update(weight_grad, rate_grad, clip=p.grad_clip_norm,
                     rate_lr=p.opt_lr if first.options.learn_lr else None,
                     weight_lr=p.opt_wt if first.options.sync_update else None)
        for learner, (x, y) in zip(self.learners, batches):
            if first_sight and not learner.options.push_after_last_glance:
                learner.memory.add(x, y, task)
            learner.last_batch = (x, y)
        return loss

    def end_batch(self, xs, ys, task: int, *, first_sight: bool) -> None:
        for learner, x, y in zip(self.learners, xs, ys):
            learner.end_batch(x, y, task, first_sight=first_sight)

    def _update(self, weight_grad, rate_grad, *, clip, rate_lr, weight_lr) -> None:
        """``update.apply_update`` for every seed: each seed's gradients clipped by their own norm."""
        clip_rows_(weight_grad, clip)
        if rate_grad is not None:
            clip_rows_(rate_grad, clip)
        if rate_grad is not None:
            self.rates.add_(rate_grad, alpha=-rate_lr)
        if weight_lr is None:
            self.weights.addcmul_(torch.relu(self.rates), weight_grad, value=-1.0)
        else:
            self.weights.add_(weight_grad, alpha=-weight_lr)
