"""Facts of the La-MAML family (methods/lookahead/ and the four variant files), pinned.

Every expected value is derived here, independently of the code under test: by plain autograd on a
functional MLP written in this file (``reference_look_ahead``, Algorithm 1 of Gupta et al. 2020 read
literally), or by a closed form written out by hand (softmax regression, whose gradient and Hessian
are short). Tests marked with ``PATHS`` run on the three backends (stacked.py's factored form and closed_form.py:
an MLP, first order; autograd.py), so each fact holds for each. Float64 throughout, tolerances near rounding: a
mutation of the algorithm moves these numbers by far more.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamaml.methods import method_class
from lamaml.models.mlp import MLP

PATHS = pytest.mark.parametrize("fast_path", ["factored", "closed-form", "autograd"],
                                ids=["factored-path", "closed-form-path", "autograd-path"])
TIGHT = {"rtol": 1e-9, "atol": 1e-12}


@pytest.fixture(autouse=True)
def _float64(double):
    """Every test here runs in float64 (the ``double`` fixture of conftest.py)."""


# -- the learner under test ----------------------------------------------------------------------

def build(name, fast_path="factored", sizes=(4, (5,), 3), seed=0, **params):
    """A learner on a tiny MLP that keeps each batch in the order given (no shuffle), on the backend
    ``fast_path`` names where it holds."""
    fast_path = {True: "factored", False: "autograd"}.get(fast_path, fast_path)
    torch.manual_seed(seed)
    cls = method_class(name)
    learner = cls(MLP(*sizes), cls.Params(fast_path=fast_path != "autograd", factored=fast_path == "factored",
                                          **params), torch.Generator().manual_seed(1))
    expected = fast_path
    if name == "la-er" or learner.params.second_order:
        expected = "autograd"
    elif fast_path == "factored" and (learner.params.inner_clamp is not None or not sizes[1]):
        expected = "closed-form"                          # where the factored form does not hold
    assert learner.backend.name == expected           # the path under test is the one taken
    learner.randperm = lambda n, device: torch.arange(n, device=device)
    return learner


def set_rates(learner, low, high, seed=3):
    """Rates drawn uniformly in [low, high): negative ones make relu(alpha) matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in learner.alpha.values():
            a.copy_(low + (high - low) * torch.rand(a.shape, generator=g))


def state(learner):
    return ([w.detach().clone() for w in learner.weights.values()],
            [a.detach().clone() for a in learner.alpha.values()])


def batch(n, seed, n_inputs=4, n_classes=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_inputs, generator=g), torch.randint(0, n_classes, (n,), generator=g)


def fill_memory(learner, x, y, task=0):
    learner.memory.add(x, y, task)
    assert learner.memory.size == len(x)


# -- the independent reference -------------------------------------------------------------------

def logits(theta, x):
    """The MLP as a function of its parameters [W1, b1, W2, b2, ...]: Linear, ReLU between."""
    for i in range(0, len(theta), 2):
        x = x @ theta[i].T + theta[i + 1]
        if i + 2 < len(theta):
            x = x.relu()
    return x


def cross_entropy(theta, x, y):
    return -logits(theta, x).log_softmax(1)[torch.arange(len(y)), y].mean()


def clipped(grads, max_norm):
    """Global-norm clipping as torch.nn.utils.clip_grad_norm_ does it (1e-6 guard)."""
    if max_norm is None:
        return list(grads)
    norm = math.sqrt(sum(g.square().sum().item() for g in grads))
    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads]


def reference_look_ahead(theta, alpha, x, y, meta_x, meta_y, *, chunks, meta_loss="mean", relu_in_inner=True,
                         inner_clamp=None, second_order=False):
    """Algorithm 1's look-ahead: returns (meta-loss, fast weights, d/d theta_0, d/d alpha)."""
    theta = [t.detach().clone().requires_grad_() for t in theta]
    alpha = [a.detach().clone().requires_grad_() for a in alpha]
    rates = [a.relu() for a in alpha] if relu_in_inner else alpha
    fast, losses = theta, []
    for start, stop in chunks:
        inner = torch.autograd.grad(cross_entropy(fast, x[start:stop], y[start:stop]), fast,
                                    create_graph=second_order)
        if inner_clamp is not None:
            inner = [g.clamp(-inner_clamp, inner_clamp) for g in inner]
        fast = [w - r * g for w, r, g in zip(fast, rates, inner)]
        losses.append(cross_entropy(fast, meta_x, meta_y))
    loss = sum(losses) / len(losses) if meta_loss == "mean" else losses[-1]
    grads = torch.autograd.grad(loss, theta + alpha)
    return loss.detach(), [w.detach() for w in fast], list(grads[:len(theta)]), list(grads[len(theta):])


def one_per_sample(n):
    return [(i, i + 1) for i in range(n)]


def softmax_regression_gradient(W, b, x, y):
    """By hand: d mean-CE / d (W, b) of logits x W^T + b is ((p - onehot)^T x / n, mean(p - onehot))."""
    residual = (x @ W.T + b).softmax(1) - F.one_hot(y, W.shape[0]).to(x.dtype)
    return residual.T @ x / len(x), residual.mean(0)


# -- the meta-loss ---------------------------------------------------------------------------------

@PATHS
def test_the_meta_loss_is_by_default_the_mean_over_inner_steps_of_the_meta_batch_loss_at_each_fast_weight(fast_path):
    learner = build("la-maml", fast_path, replay_batch_size=0, alpha_init=0.4)
    x, y = batch(4, seed=10)
    theta, alpha = state(learner)
    per_step, fast = [], theta
    for i in range(4):             # one sample per inner step; the meta-batch is the whole batch
        inner = torch.autograd.grad(cross_entropy([w.requires_grad_() for w in fast], x[i:i + 1], y[i:i + 1]), fast)
        fast = [(w - torch.relu(a) * g).detach() for w, a, g in zip(fast, alpha, inner)]
        per_step.append(cross_entropy(fast, x, y).item())
    assert max(per_step) - min(per_step) > 1e-2          # "mean" and "last" tell apart here
    loss = learner.observe(x, y, 0, first_sight=True).item()
    assert loss == pytest.approx(sum(per_step) / 4, rel=1e-12)


@PATHS
def test_the_last_meta_loss_counts_only_the_meta_batch_loss_at_the_final_fast_weights(fast_path):
    x, y = batch(4, seed=10)
    reference = build("la-maml", fast_path, replay_batch_size=0, alpha_init=0.4)
    theta, alpha = state(reference)
    mean_loss = reference_look_ahead(theta, alpha, x, y, x, y, chunks=one_per_sample(4))[0]
    last_loss, _, g_theta, g_alpha = reference_look_ahead(theta, alpha, x, y, x, y, chunks=one_per_sample(4),
                                                          meta_loss="last")
    learner = build("la-maml", fast_path, replay_batch_size=0, alpha_init=0.4, meta_loss="last",
                    grad_clip_norm=None, opt_lr=0.5)
    loss = learner.observe(x, y, 0, first_sight=True).item()
    assert abs(mean_loss - last_loss) > 1e-2
    assert loss == pytest.approx(last_loss.item(), rel=1e-12)
    new_alpha = [a - 0.5 * g for a, g in zip(alpha, g_alpha)]
    for w, t, a, g in zip(learner.weights.values(), theta, new_alpha, g_theta):
        torch.testing.assert_close(w.detach(), t - torch.relu(a) * g, **TIGHT)


# -- the meta-batch --------------------------------------------------------------------------------

@PATHS
@pytest.mark.parametrize("replay_batch_size", [1, 4])
def test_the_meta_batch_holds_replay_batch_size_replay_samples_plus_the_whole_incoming_batch(fast_path,
                                                                                            replay_batch_size):
    """Memory holds six copies of one sample, so whichever slots are drawn the meta-batch is that
    sample ``replay_batch_size`` times, then the three incoming samples."""
    learner = build("la-maml", fast_path, memories=6, replay_batch_size=replay_batch_size, grad_clip_norm=None)
    remembered_x, remembered_y = batch(1, seed=20)
    remembered_x = remembered_x * 3                            # far from the batch: its loss stands out
    fill_memory(learner, remembered_x.expand(6, -1), remembered_y.expand(6))
    x, y = batch(3, seed=21)
    theta, alpha = state(learner)

    def meta_loss(copies, incoming=True):
        meta_x = torch.cat([remembered_x.expand(copies, -1)] + ([x] if incoming else []))
        meta_y = torch.cat([remembered_y.expand(copies)] + ([y] if incoming else []))
        return reference_look_ahead(theta, alpha, x, y, meta_x, meta_y, chunks=one_per_sample(3))

    expected = meta_loss(replay_batch_size)
    for other in (meta_loss(0), meta_loss(replay_batch_size + 1), meta_loss(replay_batch_size, incoming=False)):
        assert abs(other[0] - expected[0]) > 1e-3
    loss = learner.observe(x, y, 1, first_sight=True)
    assert loss.item() == pytest.approx(expected[0].item(), rel=1e-12)
    _, _, g_theta, g_alpha = expected
    new_alpha = [a - learner.params.opt_lr * g for a, g in zip(alpha, g_alpha)]
    for w, t, a, g in zip(learner.weights.values(), theta, new_alpha, g_theta):
        torch.testing.assert_close(w.detach(), t - torch.relu(a) * g, **TIGHT)


@PATHS
def test_drawing_without_replacement_replays_every_stored_sample_once_when_memory_is_small(fast_path):
    learner = build("la-maml", fast_path, memories=3, replay_batch_size=10, replay_with_replacement=False)
    stored_x, stored_y = batch(3, seed=30)
    fill_memory(learner, stored_x * 2, stored_y)
    x, y = batch(2, seed=31)
    theta, alpha = state(learner)
    expected = reference_look_ahead(theta, alpha, x, y, torch.cat([stored_x * 2, x]), torch.cat([stored_y, y]),
                                    chunks=one_per_sample(2))[0]
    assert learner.observe(x, y, 1, first_sight=True).item() == pytest.approx(expected.item(), rel=1e-12)


@PATHS
def test_a_batch_seen_on_its_first_glance_is_replayed_in_the_next_meta_update(fast_path):
    learner = build("la-maml", fast_path, memories=2, replay_batch_size=2, replay_with_replacement=False)
    first_x, first_y = batch(2, seed=40)
    learner.observe(first_x, first_y, 0, first_sight=True)
    assert learner.memory.size == 2
    x, y = batch(2, seed=41)
    theta, alpha = state(learner)
    with_first = reference_look_ahead(theta, alpha, x, y, torch.cat([first_x, x]), torch.cat([first_y, y]),
                                      chunks=one_per_sample(2))[0]
    without = reference_look_ahead(theta, alpha, x, y, x, y, chunks=one_per_sample(2))[0]
    assert abs(with_first - without) > 1e-3
    assert learner.observe(x, y, 0, first_sight=False).item() == pytest.approx(with_first.item(), rel=1e-12)


# -- one whole update ------------------------------------------------------------------------------

UPDATE_VARIANTS = [{}, {"grad_clip_norm": 0.05}, {"grad_clip_norm": None}, {"meta_loss": "last"},
                   {"relu_in_inner": False}, {"inner_steps": 2}, {"inner_clamp": 0.02},
                   {"second_order": True, "grad_clip_norm": None}]


# The authors' MNIST settings, which La-MAML, Sync and C-MAML take by default.
DEFAULTS = {"meta_loss": "mean", "relu_in_inner": True, "inner_clamp": None, "inner_steps": None,
            "second_order": False, "grad_clip_norm": 2.0}


def _update_case(name, fast_path, variant, **extra):
    """A learner with mixed-sign rates and a memory of three distinct samples; the reference look-ahead
    with the options the variant names, the rest at ``DEFAULTS``; the learner's state, and data."""
    learner = build(name, fast_path, memories=3, replay_with_replacement=False, **variant, **extra)
    set_rates(learner, -0.1, 0.3)
    stored_x, stored_y = batch(3, seed=50)
    fill_memory(learner, stored_x, stored_y)
    x, y = batch(3, seed=51)
    meta_x, meta_y = torch.cat([stored_x, x]), torch.cat([stored_y, y])
    options = {**DEFAULTS, **variant}
    chunks = one_per_sample(3) if options["inner_steps"] is None else [(0, 2), (2, 3)]
    reference = reference_look_ahead(*state(learner), x, y, meta_x, meta_y, chunks=chunks,
                                     meta_loss=options["meta_loss"], relu_in_inner=options["relu_in_inner"],
                                     inner_clamp=options["inner_clamp"], second_order=options["second_order"])
    return learner, state(learner), options["grad_clip_norm"], (x, y), reference


def _variant_id(variant):
    return ",".join(f"{key}={value}" for key, value in variant.items()) or "defaults"


@pytest.mark.parametrize("variant, fast_path", [   # second order has no fast path
    pytest.param(variant, path, id=f"{_variant_id(variant)}-{path}-path")
    for variant in UPDATE_VARIANTS for path in ("factored", "closed-form", "autograd")
    if not (path != "autograd" and variant.get("second_order"))])
def test_one_la_maml_update_moves_rates_by_clipped_meta_gradient_then_weights_by_relu_of_the_new_rates(
        variant, fast_path):
    learner, (theta, alpha), clip, (x, y), (loss, _, g_theta, g_alpha) = _update_case(
        "la-maml", fast_path, variant, opt_lr=1.5)
    new_alpha = [a - 1.5 * g for a, g in zip(alpha, clipped(g_alpha, clip))]
    new_theta = [t - torch.relu(a) * g for t, a, g in zip(theta, new_alpha, clipped(g_theta, clip))]
    assert learner.observe(x, y, 1, first_sight=True).item() == pytest.approx(loss.item(), rel=1e-12)
    for got, want in zip(learner.alpha.values(), new_alpha):
        torch.testing.assert_close(got.detach(), want, **TIGHT)
    for got, want in zip(learner.weights.values(), new_theta):
        torch.testing.assert_close(got.detach(), want, **TIGHT)


@PATHS
@pytest.mark.parametrize("variant", UPDATE_VARIANTS[:3], ids=_variant_id)
def test_sync_la_maml_learns_the_rates_but_steps_the_weights_by_opt_wt(fast_path, variant):
    learner, (theta, alpha), clip, (x, y), (_, _, g_theta, g_alpha) = _update_case(
        "sync-la-maml", fast_path, variant, opt_lr=0.7, opt_wt=0.35)
    learner.observe(x, y, 1, first_sight=True)
    for got, a, g in zip(learner.alpha.values(), alpha, clipped(g_alpha, clip)):
        torch.testing.assert_close(got.detach(), a - 0.7 * g, **TIGHT)
    for got, t, g in zip(learner.weights.values(), theta, clipped(g_theta, clip)):
        torch.testing.assert_close(got.detach(), t - 0.35 * g, **TIGHT)


@PATHS
def test_c_maml_keeps_every_rate_at_alpha_init_and_steps_the_weights_by_opt_wt(fast_path):
    learner = build("c-maml", fast_path, memories=3, replay_with_replacement=False, alpha_init=0.25, opt_wt=0.6,
                    grad_clip_norm=0.5)
    for step in range(3):                                    # memory fills from the stream
        learner.observe(*batch(3, seed=60 + step), 0, first_sight=True)
    stored_x, stored_y = learner.memory.x.clone(), learner.memory.y.clone()
    x, y = batch(3, seed=70)
    theta, alpha = state(learner)
    assert all(torch.all(a == 0.25) for a in alpha)
    _, _, g_theta, _ = reference_look_ahead(theta, alpha, x, y, torch.cat([stored_x, x]), torch.cat([stored_y, y]),
                                            chunks=one_per_sample(3))
    learner.observe(x, y, 0, first_sight=False)
    assert all(torch.all(a == 0.25) for a in learner.alpha.values())
    for got, t, g in zip(learner.weights.values(), theta, clipped(g_theta, 0.5)):
        torch.testing.assert_close(got.detach(), t - 0.6 * g, **TIGHT)


def test_la_er_steps_the_weights_by_relu_of_the_new_rates_times_the_clipped_replay_gradient_at_the_slow_weights():
    """La-ER's defaults are the authors' ER code: 5 inner chunks, clamp 2, raw alpha inside, last step only."""
    learner = build("la-er", False, memories=3, replay_with_replacement=False, grad_clip_norm=0.3, opt_lr=2.0)
    set_rates(learner, -0.1, 0.3)
    stored_x, stored_y = batch(3, seed=80)
    fill_memory(learner, stored_x, stored_y)
    x, y = batch(10, seed=81)
    x[:2] *= 30                                # big inputs: inner gradients past the clamp at 2
    meta_x, meta_y = torch.cat([stored_x, x]), torch.cat([stored_y, y])
    theta, alpha = state(learner)
    loss, _, _, g_alpha = reference_look_ahead(theta, alpha, x, y, meta_x, meta_y,
                                               chunks=[(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)],
                                               meta_loss="last", relu_in_inner=False, inner_clamp=2.0)
    slow = [t.clone().requires_grad_() for t in theta]
    replay_gradient = torch.autograd.grad(cross_entropy(slow, meta_x, meta_y), slow)
    assert learner.observe(x, y, 1, first_sight=True).item() == pytest.approx(loss.item(), rel=1e-12)
    new_alpha = [a - 2.0 * g for a, g in zip(alpha, clipped(g_alpha, 0.3))]
    for got, want in zip(learner.alpha.values(), new_alpha):
        torch.testing.assert_close(got.detach(), want, **TIGHT)
    for got, t, a, g in zip(learner.weights.values(), theta, new_alpha, clipped(replay_gradient, 0.3)):
        torch.testing.assert_close(got.detach(), t - torch.relu(a) * g, **TIGHT)


# -- the inner step, by hand on softmax regression ------------------------------------------------

@PATHS
@pytest.mark.parametrize("relu_in_inner", [True, False])
def test_the_inner_step_uses_relu_of_alpha_or_raw_alpha_as_relu_in_inner_says(fast_path, relu_in_inner):
    learner = build("la-maml", fast_path, sizes=(4, (), 3), replay_batch_size=0, relu_in_inner=relu_in_inner)
    learner.record_fast_weights = True
    set_rates(learner, -0.3, 0.3)
    (W, b), (alpha_W, alpha_b) = state(learner)
    x, y = batch(1, seed=90)
    g_W, g_b = softmax_regression_gradient(W, b, x, y)
    rate = torch.relu if relu_in_inner else (lambda a: a)
    learner.observe(x, y, 0, first_sight=True)
    torch.testing.assert_close(learner.fast_weights["layers.0.weight"], W - rate(alpha_W) * g_W, **TIGHT)
    torch.testing.assert_close(learner.fast_weights["layers.0.bias"], b - rate(alpha_b) * g_b, **TIGHT)


@PATHS
def test_inner_clamp_clamps_each_inner_gradient_element_by_element(fast_path):
    learner = build("la-maml", fast_path, sizes=(4, (), 3), replay_batch_size=0, inner_clamp=0.05, alpha_init=0.5)
    learner.record_fast_weights = True
    (W, b), _ = state(learner)
    x, y = batch(1, seed=91)
    x *= 5
    g_W, g_b = softmax_regression_gradient(W, b, x, y)
    assert (g_W.abs() > 0.05).any() and (g_W.abs() < 0.05).any()   # some entries clamped, some not
    learner.observe(x, y, 0, first_sight=True)
    torch.testing.assert_close(learner.fast_weights["layers.0.weight"], W - 0.5 * g_W.clamp(-0.05, 0.05), **TIGHT)
    torch.testing.assert_close(learner.fast_weights["layers.0.bias"], b - 0.5 * g_b.clamp(-0.05, 0.05), **TIGHT)


# -- clipping ----------------------------------------------------------------------------------------

@PATHS
def test_weights_and_rates_are_each_clipped_to_the_norm_on_their_own(fast_path):
    """Sync: the weight step is opt_wt * clip(g_theta), the rate step opt_lr * clip(g_alpha), so with
    both meta-gradients above the clip c each step has norm exactly (rate x c)."""
    learner, (theta, alpha), _, (x, y), (_, _, g_theta, g_alpha) = _update_case(
        "sync-la-maml", fast_path, {"grad_clip_norm": 1e-3}, opt_lr=0.7, opt_wt=0.35)
    norm = lambda tensors: math.sqrt(sum(t.square().sum().item() for t in tensors))  # noqa: E731
    assert norm(g_theta) > 0.01 and norm(g_alpha) > 0.01
    learner.observe(x, y, 1, first_sight=True)
    weight_step = [w.detach() - t for w, t in zip(learner.weights.values(), theta)]
    rate_step = [a.detach() - a0 for a, a0 in zip(learner.alpha.values(), alpha)]
    assert norm(weight_step) == pytest.approx(0.35e-3, rel=1e-4)
    assert norm(rate_step) == pytest.approx(0.7e-3, rel=1e-4)


# -- second order ------------------------------------------------------------------------------------

def test_second_order_adds_minus_the_inner_hessian_times_the_rated_meta_gradient():
    """Softmax regression, logits W x, one sample, one inner step, meta-batch = that sample:
    theta_1 = W - r * g(W), so the meta-gradient is (I - H r) m with H the Hessian at W, which is
    (H V) = (A V x) x^T with A = diag(p) - p p^T. First order keeps m alone. The rate gradient,
    -m * g, is the same for both: g does not depend on alpha."""
    x, y = torch.tensor([[0.8, -1.3]]), torch.tensor([1])

    def learner(second_order):
        torch.manual_seed(0)
        cls = method_class("la-maml")
        model = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            model.weight.copy_(torch.tensor([[0.3, -0.2], [0.1, 0.4]]))
        result = cls(model, cls.Params(second_order=second_order, replay_batch_size=0, grad_clip_norm=None,
                                       opt_lr=0.5), torch.Generator().manual_seed(0))
        with torch.no_grad():
            result.alpha["weight"].copy_(torch.tensor([[0.2, 0.5], [0.9, 0.3]]))
        return result

    W, r = torch.tensor([[0.3, -0.2], [0.1, 0.4]]), torch.tensor([[0.2, 0.5], [0.9, 0.3]])
    onehot = F.one_hot(y, 2).to(x.dtype)[0]
    p0 = (W @ x[0]).softmax(0)
    g = torch.outer(p0 - onehot, x[0])
    m = torch.outer((((W - r * g) @ x[0]).softmax(0) - onehot), x[0])
    A = torch.diag(p0) - torch.outer(p0, p0)
    correction = torch.outer(A @ (r * m) @ x[0], x[0])
    new_alpha = r + 0.5 * m * g
    assert correction.abs().max() > 1e-2
    for second_order, meta_gradient in ((False, m), (True, m - correction)):
        method = learner(second_order)
        method.observe(x, y, 0, first_sight=True)
        torch.testing.assert_close(method.alpha["weight"].detach(), new_alpha, **TIGHT)
        torch.testing.assert_close(method.weights["weight"].detach(), W - torch.relu(new_alpha) * meta_gradient,
                                   **TIGHT)
