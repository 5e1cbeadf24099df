import copy
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lamaml
from lamaml.methods import METHODS, method_class
from lamaml.engine.loop import learn_batch
from lamaml.methods.qp import project_to_cone


def make(name, model, seed=0, **params):
    cls = method_class(name)
    return cls(model, cls.Params(**params), torch.Generator().manual_seed(seed))


def feed(learner, x, y, task):
    """One incoming batch, one glance, as the run loop hands it over."""
    learn_batch(learner, x, y, task, glances=1, first_epoch=True)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def brute_force_projection(g, G):
    """min ||x - g|| s.t. G x >= 0, by trying every active set (KKT: feasible, multipliers >= 0)."""
    best = None
    for size in range(len(G) + 1):
        for active in itertools.combinations(range(len(G)), size):
            A = G[list(active)]
            lam = np.linalg.solve(A @ A.T, A @ g) if size else np.zeros(0)
            x = g - A.T @ lam
            if (G @ x >= -1e-9).all() and (lam <= 1e-9).all():
                if best is None or np.linalg.norm(x - g) < np.linalg.norm(best - g):
                    best = x
    return best


@pytest.mark.parametrize("seed", range(40))
def test_gem_projection_satisfies_every_constraint(seed):
    rng = torch.Generator().manual_seed(seed)
    t = 1 + seed % 9
    G = torch.randn(t, 300, generator=rng, dtype=torch.float64)
    g = -G.sum(0) + 0.3 * torch.randn(300, generator=rng, dtype=torch.float64)   # conflicts with most
    for margin in (0.0, 0.5):
        projected = project_to_cone(g, G, margin)
        assert (G @ projected).min().item() >= -1e-6


@pytest.mark.parametrize("seed", range(15))
def test_gem_projection_matches_a_brute_force_qp_solution(seed):
    rng = np.random.default_rng(seed)
    t = 1 + seed % 4
    G, g = rng.normal(size=(t, 6)), rng.normal(size=6) - 1.5 * rng.normal(size=(t, 6)).sum(0)
    ours = project_to_cone(torch.tensor(g), torch.tensor(G)).numpy()
    np.testing.assert_allclose(ours, brute_force_projection(g, G), atol=1e-7)


def test_gem_leaves_a_gradient_without_conflict_unchanged():
    G = torch.eye(3, 5, dtype=torch.float64)
    g = torch.tensor([1.0, 2.0, 0.5, -4.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(project_to_cone(g, G), g)


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_quadratically():
    learner = make("ewc", tiny_net(), n_memories=5, memory_strength=3.0)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    learner.begin_task(0)
    feed(learner, x, y, 0)
    learner.end_task(0)                                # the end of task 0 anchors it...
    anchor = [a.clone() for a in learner.anchors[0][1]]
    direction = [torch.randn_like(a) for a in anchor]

    def penalty_at(scale):
        with torch.no_grad():
            for p, a, d in zip(learner.model.parameters(), anchor, direction):
                p.copy_(a + scale * d)
        return learner.penalty().item()
    assert penalty_at(0.0) == 0.0
    assert penalty_at(1.0) > 0
    assert penalty_at(2.0) == pytest.approx(4 * penalty_at(1.0), rel=1e-5)
    assert penalty_at(-0.5) == pytest.approx(0.25 * penalty_at(1.0), rel=1e-5)


def test_ewc_fisher_is_the_squared_gradient_on_the_tasks_first_samples():
    learner = make("ewc", tiny_net(1), n_memories=3, lr=1e-9)
    x, y = torch.randn(4, 4), torch.randint(0, 3, (4,))
    learner.begin_task(0)
    feed(learner, x[:2], y[:2], 0)
    feed(learner, x[2:], y[2:], 0)
    model = copy.deepcopy(learner.model)
    learner.end_task(0)
    expected = torch.autograd.grad(F.cross_entropy(model(x[:3]), y[:3]), list(model.parameters()))
    for fisher, g in zip(learner.anchors[0][0], expected):
        torch.testing.assert_close(fisher, g.pow(2), rtol=1e-4, atol=1e-10)


def _mer_with_one_stored_sample(beta, gamma):
    learner = make("mer", tiny_net(2), memories=3, replay_batch_size=2, batches_per_example=1,
                   beta=beta, gamma=gamma, lr=0.1)
    stored = (torch.randn(1, 4), torch.tensor([2]))
    learner.memory.add(stored[0].repeat(2, 1), stored[1].repeat(2), task=0)   # every draw is this sample
    return learner, stored


def test_mer_with_one_batch_and_unit_reptile_rates_is_plain_replay_sgd():
    learner, (mx, my) = _mer_with_one_stored_sample(beta=1.0, gamma=1.0)
    reference = copy.deepcopy(learner.model)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    x, y = torch.randn(1, 4), torch.tensor([1])
    for bx, by in [(x, y), (mx, my), (mx, my)]:       # the incoming example first, then the replay draws
        optimizer.zero_grad()
        F.cross_entropy(reference(bx), by).backward()
        optimizer.step()
    learner.observe(x, y, 0, first_sight=True)
    for ours, theirs in zip(learner.model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs)
    shrunk, _ = _mer_with_one_stored_sample(beta=0.5, gamma=1.0)
    shrunk.observe(x, y, 0, first_sight=True)
    start = list(_mer_with_one_stored_sample(1.0, 1.0)[0].model.parameters())
    for half, full, before in zip(shrunk.model.parameters(), learner.model.parameters(), start):
        torch.testing.assert_close(half, before + 0.5 * (full - before))   # within-batch Reptile step


def test_a_gem_projected_step_never_opposes_the_reference_and_task_0_counts():
    learner = make("a-gem", tiny_net(3), n_memories=8, lr=0.5)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        feed(learner, torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g), 0)
    x, y = torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
    reference = learner.reference_gradient(1)
    assert reference is not None                          # the authors' code would ignore task 0 here
    before = torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()])
    learner.observe(x, y, 1, first_sight=True)
    step = torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()]) - before
    assert (-step / 0.5) @ reference >= -1e-6             # the gradient used has g . g_ref >= 0


def test_la_er_moves_weights_along_the_replay_gradient_scaled_by_the_new_rates(double):
    learner = make("la-er", tiny_net(4), replay_batch_size=0, grad_clip_norm=None, inner_clamp=None)
    x, y = torch.randn(4, 4), torch.randint(0, 3, (4,))
    model = copy.deepcopy(learner.model)
    expected = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    learner.randperm = lambda n, device: torch.arange(n)     # keep the batch order for the check
    learner.observe(x, y, 0, first_sight=True)
    for w, w0, a, g in zip(learner.model.parameters(), model.parameters(), learner.alpha.values(), expected):
        assert not torch.all(a == 0.1)                     # the rates were meta-learned
        torch.testing.assert_close(w.detach(), w0.detach() - torch.relu(a.detach()) * g)


def _two_easy_tasks():
    torch.manual_seed(0)
    centres = torch.randn(2, 3, 4) * 4

    def split(task, n):
        y = torch.randint(0, 3, (n,))
        return centres[task, y] + torch.randn(n, 4), y
    return [(split(t, 60), split(t, 60)) for t in range(2)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_learns_two_easy_tasks(name):
    extra = {"lr": 0.05} if "lr" in method_class(name).Params.model_fields else {}
    result = lamaml.fit(tiny_net(5), _two_easy_tasks(), method=name, batch_size=5, glances=2, epochs=3, **extra)
    learned = result.acc_matrix[-1] if method_class(name).joint else np.diag(result.acc_matrix)
    assert learned.min() > 60                                                  # chance is 33%


def test_the_iid_oracle_trains_once_on_every_task_and_reports_only_the_final_row():
    result = lamaml.fit(tiny_net(5), _two_easy_tasks(), method="iid", batch_size=5, epochs=3, glances=1, lr=0.05)
    assert np.isnan(result.acc_matrix[0]).all() and result.acc_matrix[1].min() > 60
    assert result.metrics["bti"] is None and result.ra == pytest.approx(result.acc_matrix[1].mean())
    assert result.updates == 3 * 24


def test_ewc_penalty_equals_the_sum_of_per_task_quadratics(double):
    learner = make("ewc", tiny_net(6), n_memories=4, memory_strength=2.0, lr=0.3)
    g = torch.Generator().manual_seed(1)
    for task in range(4):
        learner.begin_task(task)
        for _ in range(3):
            feed(learner, torch.randn(4, 4, generator=g), torch.randint(0, 3, (4,), generator=g), task)
        learner.end_task(task)
    direct = sum((f * (p - a).pow(2)).sum() for fisher, anchor in learner.anchors
                 for p, f, a in zip(learner.model.parameters(), fisher, anchor))
    assert len(learner.anchors) == 4
    assert learner.penalty().item() == pytest.approx(2.0 * direct.item(), rel=1e-9)


def test_gem_batched_task_gradients_equal_one_backward_per_task():
    learner = make("gem", tiny_net(7), n_memories=5, grad_clip_norm=0.5)
    g = torch.Generator().manual_seed(2)
    for task in range(4):
        learner.memory.add(torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g), task)
    batched = learner.past_gradients(task=3)
    for row, task in zip(batched, range(3)):
        x, y = learner.memory.get(task)
        expected = torch.cat([v.reshape(-1) for v in learner.gradients(F.cross_entropy(learner.model(x), y), 0.5)])
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-7)


def mer_by_hand_against_autograd(build, x_shape, heads, clip, step_class, batches=4, n=3, **step_options):
    """MER's steps by hand (``fast_path``) and through autograd from the same float64 net over a stream
    that fills and samples the memory; asserts equal losses and weights to 1e-10, returns the weights.
    ``step_options``: attributes set on the by-hand step."""
    runs = []
    for fast in (True, False):
        torch.manual_seed(0)
        model = build().double()
        learner = make("mer", model, seed=3, memories=5, replay_batch_size=3, batches_per_example=2,
                       beta=0.3, gamma=0.7, lr=0.2, grad_clip_norm=clip, fast_path=fast)
        assert isinstance(learner.by_hand, step_class) == fast
        for name, value in step_options.items() if fast else ():
            setattr(learner.by_hand, name, value)
        if heads:
            learner.use_task_heads(torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool))
        g = torch.Generator().manual_seed(1)
        losses = []
        for t in range(2):
            for _ in range(batches):
                x = torch.randn(n, *x_shape, generator=g, dtype=torch.float64)
                y = torch.randint(0, 3, (n,), generator=g) + (3 * t if heads else 0)
                losses.append(learner.observe(x, y, t, first_sight=True))
                learner.end_batch(x, y, t, first_sight=True)
        runs.append(([p.detach().clone() for p in model.parameters()], torch.stack(losses)))
    (fast_weights, fast_losses), (slow_weights, slow_losses) = runs
    torch.testing.assert_close(fast_losses, slow_losses, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(fast_weights, slow_weights):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    return fast_weights


@pytest.mark.parametrize("heads, clip", [(False, None), (True, 0.05)])
def test_mer_steps_by_hand_on_an_mlp_equal_autograds_steps(heads, clip):
    """The fast path (methods/mlp_step.py) against autograd, float64, over a stream that fills and
    samples the memory: relu masks, the softmax gradient, task-head masking and the closed-form clip."""
    from lamaml.methods.mlp_step import MLPStep
    from lamaml.models.mlp import MLP
    weights = mer_by_hand_against_autograd(lambda: MLP(12, (9, 7), 6), (12,), heads, clip, MLPStep)
    assert any((p - q).abs().max() > 1e-3 for p, q in zip(weights, MLP(12, (9, 7), 6).double().parameters()))


@pytest.mark.parametrize("heads, clip, host_scale", [(False, None, None), (True, 0.05, None), (True, 50.0, None),
                                                     (True, 0.05, False), (True, 50.0, False)])
def test_mer_steps_with_the_convnets_head_by_hand_equal_autograds_steps(heads, clip, host_scale):
    """ConvNetStep (the pc-cnn's head by hand, its convolutions through autograd) against autograd,
    float64: the head's gradient into the convolutions, task heads, and the clip over both parts
    (0.05 clips every step, 50 none); host_scale=False: the clip's scale kept a tensor, as on a GPU."""
    from lamaml.methods.mlp_step import ConvNetStep
    from lamaml.models.convnet import ConvNet
    build = lambda: ConvNet((3, 8, 8), 6, filters=5, hidden=7)  # noqa: E731
    weights = mer_by_hand_against_autograd(build, (3, 8, 8), heads, clip, ConvNetStep, batches=3, n=2,
                                           host_scale=host_scale)
    torch.manual_seed(0)
    assert all((p - q).abs().max() > 1e-4 for p, q in zip(weights, build().double().parameters()))  # all moved


class MkldnnSeen(nn.Module):
    """A small conv net whose second convolution is large enough for PyTorch to send it to oneDNN when
    oneDNN is on (over 20,480 input numbers); it notes whether oneDNN was on at each training forward."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 24, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(24, 24, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(24 * 16 * 16, 4))
        self.onednn_on = set()

    def forward(self, x):
        self.onednn_on.add(torch._C._get_mkldnn_enabled())
        return self.net(x)


def test_mer_steps_a_conv_net_on_pytorchs_own_convolutions_with_the_same_numbers_and_restores_onednn():
    """native_convs: oneDNN is off during MER's single-image steps on a conv net (its per-call weight
    reorders cost more than the convolution), back on after; the steps are the same maths."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    runs = []
    for native in (True, False):
        torch.manual_seed(0)
        model = MkldnnSeen()
        learner = make("mer", model, seed=3, memories=4, replay_batch_size=2, batches_per_example=2, lr=0.05,
                       native_convs=native)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, y = torch.randn(2, 3, 64, 64, generator=g), torch.randint(0, 4, (2,), generator=g)
            with warnings.catch_warnings():
                warnings.simplefilter("error")       # nothing for the user to read
                learner.observe(x, y, 0, first_sight=True)
            learner.end_batch(x, y, 0, first_sight=True)
        assert model.onednn_on == {not native} and torch._C._get_mkldnn_enabled()
        runs.append([p.detach().clone() for p in model.parameters()])
    for native, onednn in zip(*runs):
        torch.testing.assert_close(native, onednn, rtol=1e-4, atol=1e-5)
    mlp = MkldnnSeen()
    mlp.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 4))
    learner = make("mer", mlp, seed=3, memories=4, replay_batch_size=2, lr=0.05)
    learner.observe(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]), 0, first_sight=True)
    assert mlp.onednn_on == {True}            # no convolution: nothing to switch


@pytest.mark.parametrize("intel", [True, False])
def test_mer_native_convs_auto_takes_pytorchs_own_convolutions_on_intel_only(monkeypatch, intel):
    """native_convs=auto: PyTorch's own kernels where MKL runs its AVX-512 code (an Intel CPU), oneDNN
    elsewhere (on AMD its own kernels are faster); an explicit true or false wins over the vendor."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    import lamaml.methods.mer as mer
    monkeypatch.setattr(mer, "intel_cpu", lambda: intel)
    for setting, native in (("auto", intel), (True, True), (False, False)):
        model = MkldnnSeen()
        learner = make("mer", model, seed=3, memories=4, replay_batch_size=2, lr=0.05, native_convs=setting)
        learner.observe(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]), 0, first_sight=True)
        assert model.onednn_on == {not native}, setting
