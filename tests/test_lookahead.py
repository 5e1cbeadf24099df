import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamaml.methods import method_class
from lamaml.methods.base import clip_global_norm_
from lamaml.methods.lookahead import chunk_bounds
from lamaml.methods.lookahead.autograd import AutogradBackend


def tiny_net(seed=0, activation=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), activation(), nn.Linear(4, 2))


def make(name, model, **params):
    cls = method_class(name)
    return cls(model, cls.Params(**params), torch.Generator().manual_seed(0))


def rate_leaves(learner):
    """The learner's rates as autograd leaves sharing its storage (an edit of one edits the other)."""
    return {name: a.detach().requires_grad_() for name, a in learner.alpha.items()}


def look_ahead(learner, rates, x, y, meta_x, meta_y):
    """The learner's meta-loss from its current weights, as a differentiable graph."""
    backend = AutogradBackend(learner.model, learner.loss)
    return backend.meta_loss(learner.weights, rates, (x, y, 0), (meta_x, meta_y, None), learner.plan(len(x)))[0]


def test_second_order_meta_gradient_equals_finite_differences(double):
    learner = make("la-maml", tiny_net(), second_order=True, alpha_init=0.3, inner_steps=2)
    with torch.no_grad():
        for a in learner.alpha.values():
            a.uniform_(0.1, 0.5)            # distinct rates, all away from relu's kink
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 3, generator=g), torch.randint(0, 2, (4,), generator=g)
    meta_x, meta_y = torch.randn(6, 3, generator=g), torch.randint(0, 2, (6,), generator=g)
    rates = rate_leaves(learner)
    targets = list(learner.weights.values()) + list(rates.values())
    analytic = torch.autograd.grad(look_ahead(learner, rates, x, y, meta_x, meta_y), targets)

    eps = 1e-6
    for tensor, grad in zip(targets, analytic):
        flat = tensor.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = look_ahead(learner, rates, x, y, meta_x, meta_y).item()
            flat[i] = old - eps
            down = look_ahead(learner, rates, x, y, meta_x, meta_y).item()
            flat[i] = old
            assert grad.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_first_order_drops_exactly_the_second_derivative_terms(double):
    """First order: d meta_loss / d theta_0 is the meta-gradient at the fast weights."""
    learner = make("la-maml", tiny_net(1), alpha_init=0.2)
    x, y = torch.randn(1, 3), torch.tensor([1])
    meta_x, meta_y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    weights, rates = list(learner.weights.values()), rate_leaves(learner)
    grads = torch.autograd.grad(look_ahead(learner, rates, x, y, meta_x, meta_y), weights + list(rates.values()))

    model = copy.deepcopy(learner.model)
    params = list(model.parameters())
    inner = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    with torch.no_grad():
        for p, g in zip(params, inner):
            p -= 0.2 * g
    outer = torch.autograd.grad(F.cross_entropy(model(meta_x), meta_y), params)
    for got, want in zip(grads[:4], outer):
        torch.testing.assert_close(got, want)
    for got, want, g in zip(grads[4:], outer, inner):    # d/d alpha of theta - alpha * g
        torch.testing.assert_close(got, -want * g)


def _one_step_reference(learner, x, y, inner_rates):
    """Independent closed form of one first-order meta-update with one inner step, no replay."""
    model = copy.deepcopy(learner.model)
    params = list(model.parameters())
    inner = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    theta0 = [p.detach().clone() for p in params]
    rates = inner_rates if isinstance(inner_rates, list) else [inner_rates] * len(params)
    with torch.no_grad():
        for p, g, r in zip(params, inner, rates):
            p -= r * g
    outer = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    return theta0, inner, outer


def test_la_maml_updates_rates_first_then_weights_by_relu_of_the_new_rates(double):
    learner = make("la-maml", tiny_net(2), opt_lr=3.0, replay_batch_size=0, grad_clip_norm=None)
    with torch.no_grad():                  # some rates negative, so that relu matters
        for a in learner.alpha.values():
            a.uniform_(-0.1, 0.2)
    old_alpha = [a.detach().clone() for a in learner.alpha.values()]
    x, y = torch.randn(1, 3), torch.tensor([0])
    theta0, inner, outer = _one_step_reference(learner, x, y, [torch.relu(a) for a in old_alpha])
    learner.observe(x, y, 0, first_sight=True)
    for a, a0, w, t0, g, m in zip(learner.alpha.values(), old_alpha, learner.weights.values(), theta0, inner, outer):
        new_alpha = a0 + 3.0 * m * g * (a0 > 0)          # alpha - eta * (-m * g * 1[alpha > 0])
        torch.testing.assert_close(a.detach(), new_alpha)
        torch.testing.assert_close(w.detach(), t0 - torch.relu(new_alpha) * m)


def test_c_maml_keeps_rates_fixed_and_takes_an_sgd_step_on_the_weights(double):
    learner = make("c-maml", tiny_net(3), alpha_init=0.1, opt_wt=0.7, replay_batch_size=0, grad_clip_norm=None)
    x, y = torch.randn(1, 3), torch.tensor([1])
    theta0, _, outer = _one_step_reference(learner, x, y, 0.1)
    learner.observe(x, y, 0, first_sight=True)
    assert all(torch.all(a == 0.1) for a in learner.alpha.values())
    for w, t0, m in zip(learner.weights.values(), theta0, outer):
        torch.testing.assert_close(w.detach(), t0 - 0.7 * m)


def test_sync_learns_rates_but_steps_weights_with_the_scalar_rate(double):
    learner = make("sync-la-maml", tiny_net(4), alpha_init=0.1, opt_lr=0.5, opt_wt=0.2,
                   replay_batch_size=0, grad_clip_norm=None)
    x, y = torch.randn(1, 3), torch.tensor([0])
    theta0, inner, outer = _one_step_reference(learner, x, y, 0.1)
    learner.observe(x, y, 0, first_sight=True)
    for a, w, t0, g, m in zip(learner.alpha.values(), learner.weights.values(), theta0, inner, outer):
        torch.testing.assert_close(a.detach(), 0.1 + 0.5 * m * g)
        torch.testing.assert_close(w.detach(), t0 - 0.2 * m)


def test_clipping_scales_to_the_global_norm_and_leaves_small_gradients_alone():
    big = [torch.full((3,), 4.0), torch.full((4,), 3.0)]       # norm sqrt(48 + 36)
    clip_global_norm_(big, 2.0)
    assert torch.linalg.vector_norm(torch.cat(big)).item() == pytest.approx(2.0, rel=1e-5)
    assert big[0][0] / big[1][0] == pytest.approx(4 / 3)
    small = [torch.tensor([0.3, 0.4])]
    clip_global_norm_(small, 2.0)
    assert small[0].tolist() == pytest.approx([0.3, 0.4], rel=1e-5)


@pytest.mark.parametrize("max_norm", [0.5, 5.0, 50.0])
def test_clipping_equals_torchs_clip_grad_norm_to_the_bit(max_norm):
    # on the CPU the multiply is skipped where the scale is 1: the numbers must not notice
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=g) for shape in [(7, 5), (5,), (3, 7)]]   # norm about 6.9
    ours, theirs = [t.clone() for t in grads], [torch.nn.Parameter(t.clone()) for t in grads]
    for p, t in zip(theirs, grads):
        p.grad = t.clone()
    clip_global_norm_(ours, max_norm)
    torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert all(torch.equal(a, p.grad) for a, p in zip(ours, theirs))
    assert all(torch.equal(a, t) for a, t in zip(ours, grads)) == (max_norm == 50.0)


@pytest.mark.parametrize("batch, steps, sizes", [(10, None, [1] * 10), (10, 5, [2] * 5),
                                                 (10, 3, [4, 4, 2]), (3, 5, [1, 1, 1])])
def test_inner_steps_split_the_batch_into_the_authors_chunks(batch, steps, sizes):
    bounds = chunk_bounds(batch, steps)
    assert [b - a for a, b in bounds] == sizes and bounds[0][0] == 0 and bounds[-1][1] == batch


def test_each_sample_enters_memory_on_its_first_glance_only():
    learner = make("la-maml", tiny_net(), memories=50)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    for glance in range(3):
        learner.observe(x, y, 0, first_sight=glance == 0)
    learner.observe(x, y, 0, first_sight=False)
    assert learner.memory.n_seen == 10


def test_the_same_seed_gives_identical_weights():
    def train():
        learner = make("la-maml", tiny_net(7), memories=5)
        g = torch.Generator().manual_seed(9)
        for step in range(20):
            x, y = torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g)
            learner.observe(x, y, step // 10, first_sight=step % 2 == 0)
        return torch.cat([w.detach().view(-1) for w in learner.weights.values()])
    assert torch.equal(train(), train())


def test_a_new_variant_is_one_file_of_params_and_options(double):
    """examples/textbook_la_maml.py, the worked example of docs/architecture.md, registers and learns:
    its meta-loss is the last inner step's, second order, so it takes the autograd backend."""
    import importlib.util
    from lamaml.methods import METHODS
    from conftest import REPO
    spec = importlib.util.spec_from_file_location("textbook_la_maml", REPO / "examples" / "textbook_la_maml.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        learner = make("textbook-la-maml", tiny_net(), memories=5)
        assert learner.backend.name == "autograd" and learner.plan(4).mean_over_steps is False
        before = [a.clone() for a in learner.alpha.values()]
        x, y = torch.randn(4, 3), torch.randint(0, 2, (4,))
        learner.observe(x, y, 0, first_sight=True)
        assert all(not torch.equal(a, b) for a, b in zip(learner.alpha.values(), before))   # rates learned
    finally:
        METHODS.pop("textbook-la-maml", None)


def test_a_variant_whose_params_lack_a_rate_its_update_reads_fails_when_defined():
    from lamaml.methods.lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams
    with pytest.raises(TypeError, match="must declare opt_lr and opt_wt"):
        class Broken(LookaheadMetaLearner):    # noqa: F841
            Params = LookaheadParams
            options = LookaheadOptions(learn_lr=True, sync_update=True)
