"""Meta-BGD: C-MAML's look-ahead objective optimised by Bayesian Gradient Descent (Zeno et al. 2018).

The paper's ablation (Gupta et al. 2020, Table 2; their model/meta-bgd.py). Every weight is a Gaussian
with mean mu and standard deviation sigma. Per glance, ``train_mc_iters`` Monte-Carlo draws
theta = mu + sigma * eps each run the C-MAML inner loop and meta-loss from theta; with g the
meta-gradient at theta times the batch size (BGD's sum-of-losses scale) and E the mean over draws:

    mu    <- mu - mean_eta * sigma^2 * E[g]
    sigma <- sigma * sqrt(1 + (sigma * E[g eps] / 2)^2) - sigma^2 * E[g eps] / 2

and the network then holds mu (what predictions use). The inner rates alpha are random variables
too, updated by the same rule (``bgd_on_rates``): the authors' code builds BGD's groups from all
named parameters, alphas included; ``bgd_on_rates=false`` keeps them at ``alpha_init``.

Defaults follow the authors' ``meta-bgd.py`` on CIFAR-100: second order, 3 inner chunks
(``cifar_batches 3``), raw alpha with the element-wise inner clamp, std_init 0.02, mean_eta 50,
2 draws, each draw with its own shuffle of the incoming batch and its own replay samples, and only
the weights' meta-gradient clipped (their clip reads the Learner's parameters, which exclude the
alphas; ``clip_rates=true`` clips the rates' separately, as the rest of the family does).

As theirs, a batch enters memory during the first draw at its first sight (epoch 0, glance 0), so
the later draws' replay samples may already include it.

The draws' meta-gradients depend on each other only through those random choices. So on a CPU with
two or more training threads (``parallel_draws``, the default) this thread makes every choice in the
authors' order and each meta-gradient runs on a worker thread of its own, on its share of the
threads, beside the next draw's choices (``concurrent.ThreadSplit``); the sums are taken in draw
order. Where each draw gets one thread (two threads, two draws: the default on the 2-core reference
machine), a run gives a one-thread run's numbers to the bit.
"""
import torch
from pydantic import Field

from .base import COMPUTATION_ONLY, register
from .concurrent import ThreadSplit
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams
from .lookahead.state import split_views
from .lookahead.update import clip_


class MetaBGDParams(LookaheadParams):
    alpha_init: float = Field(0.1, ge=0, allow_inf_nan=False, description="initial inner rates (means)")
    second_order: bool = Field(True, description="back-propagate through the inner gradients")
    inner_steps: int | None = Field(3, ge=1, description="inner chunks (cifar_batches)")
    inner_clamp: float | None = Field(2.0, gt=0, allow_inf_nan=False, description="element-wise inner clamp")
    relu_in_inner: bool = Field(False, description="inner step uses relu(alpha)")
    std_init: float = Field(0.02, gt=0, allow_inf_nan=False, description="initial sigma of every weight")
    mean_eta: float = Field(50.0, gt=0, allow_inf_nan=False, description="BGD's rate of the means")
    train_mc_iters: int = Field(2, ge=1, description="Monte-Carlo weight draws per glance")
    bgd_on_rates: bool = Field(True, description="the inner rates are Gaussian and BGD-updated too "
                                                 "(authors' code) or stay fixed")
    clip_rates: bool = Field(False, description="clip the rates' meta-gradient too (the authors clip the "
                                                "weights' only)")
    parallel_draws: bool = Field(True, description="on a CPU with two or more training threads, compute the "
                                 "draws' meta-gradients side by side, each on its share of the threads (the "
                                 "numbers of a one-thread run); false: one after another on all of them",
                                 json_schema_extra=COMPUTATION_ONLY)


@register
class MetaBGD(LookaheadMetaLearner):
    name = "meta-bgd"
    summary = "Meta-BGD: C-MAML's look-ahead meta-loss, weights (and rates) by Bayesian gradient descent"
    Params = MetaBGDParams
    options = LookaheadOptions(learn_lr=True, sync_update=False)   # the rates get gradients; BGD moves both
    state_attributes = ("rates", "memory", "current_task", "mean", "std")
    own_step = True                # BGD's step, not the family's update rule

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        # The random variables: the flat weights, and the flat rates unless they stay fixed.
        self.variables = [self.state.weights] + ([self.state.rates] if params.bgd_on_rates else [])
        self.mean = [v.clone() for v in self.variables]
        self.std = [torch.full_like(v, params.std_init) for v in self.variables]

    @torch.no_grad()
    def draw(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One sample mu + sigma * eps of the weights (and rates), in tensors of its own; returns
        ``(sample, eps)``."""
        shapes = list(self.weights.values())
        eps = [torch.empty_like(m) for m in self.mean]
        for e in eps:     # parameter by parameter, so the generator's sequence is the per-tensor one
            for view in split_views(e, shapes):
                view.copy_(torch.randn(view.shape, generator=self.generator))
        return [torch.addcmul(mean, std, e) for mean, std, e in zip(self.mean, self.std, eps)], eps

    def plan(self, batch_size):
        return self.plan_with(batch_size, learn_lr=self.params.bgd_on_rates)

    def observe(self, x, y, task, *, first_sight):
        p = self.params
        order = self.randperm(len(x), x.device)
        x, y = x[order], y[order]
        grad_sum = [torch.zeros_like(m) for m in self.mean]
        grad_eps_sum = [torch.zeros_like(m) for m in self.mean]
        workers = self.side_by_side(p.train_mc_iters, p.parallel_draws)
        draws, losses = [], []

        def add(future, eps):        # in draw order, whichever finished first
            loss, grads = future.result()
            torch._foreach_add_(grad_sum, grads)
            torch._foreach_add_(grad_eps_sum, torch._foreach_mul(grads, eps))
            losses.append(loss)
        with ThreadSplit(workers, torch.get_num_threads()) as split:
            for draw in range(p.train_mc_iters):
                # The random choices, in the authors' order on this thread; each meta-gradient may then
                # run beside the next draw's choices.
                bx, by = x, y
                if draw:   # as the authors' code: every later draw shuffles the batch and samples replay anew
                    order = self.randperm(len(x), x.device)
                    bx, by = x[order], y[order]
                meta = self.meta_batch(bx, by, task)
                sample, eps = self.draw()
                draws.append((split.submit(lambda s=sample, batch=(bx, by, task), m=meta, own=workers > 1:
                                           self.draw_gradient(s, batch, m, own_model=own)), eps))
                if workers == 1:   # done already: summed now, as the closed form reuses its result buffers
                    add(*draws.pop())
                if draw == 0 and first_sight:   # as theirs: the next draws' replay may pick this batch
                    self.memory.add(x, y, task)
        for future, eps in draws:
            add(future, eps)
        self.bgd_step(grad_sum, grad_eps_sum)
        return torch.stack(losses).mean()

    def draw_gradient(self, sample, batch, meta, *, own_model: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The C-MAML meta-gradient at one draw's weights (and rates), clipped and scaled as BGD reads it;
        ``own_model``: through this thread's copy of the model (``thread_backend``)."""
        p = self.params
        backend = self.thread_backend() if own_model else self.backend
        state = self.state.at(sample[0], sample[1] if p.bgd_on_rates else None)
        result = backend(state, batch, meta, self.plan(len(batch[0])))
        grads = [result.weights] + ([result.rates] if p.bgd_on_rates else [])
        clip_(grads[0], p.grad_clip_norm)
        if p.clip_rates and p.bgd_on_rates:
            clip_(grads[1], p.grad_clip_norm)
        torch._foreach_mul_(grads, float(len(batch[0])))      # BGD reads the gradient of the summed loss
        return result.loss, grads

    @torch.no_grad()
    def bgd_step(self, grad_sum: list[torch.Tensor], grad_eps_sum: list[torch.Tensor]) -> None:
        draws = self.params.train_mc_iters
        for mean, std, g, ge, variable in zip(self.mean, self.std, grad_sum, grad_eps_sum, self.variables):
            e_grad, e_grad_eps = g / draws, ge / draws
            variance = std * std
            mean.addcmul_(variance, e_grad, value=-self.params.mean_eta)
            half = e_grad_eps * std / 2
            std.copy_(std * torch.sqrt(1 + half * half) - variance * e_grad_eps / 2)
            variable.copy_(mean)
