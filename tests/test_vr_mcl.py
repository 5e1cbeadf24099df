"""VR-MCL (methods/vr_mcl.py): the look-ahead core's variance-reduction option, pinned against an
independent reference, and the method on every benchmark.

The reference is test_lookahead_pins.py's ``reference_look_ahead`` (plain autograd on a functional MLP
written there), called twice per step, at the weights and at the previous weights, and combined by
hand here as VR-MCL's code does.
"""
import io

import numpy as np
import pytest
import torch

from lamaml.config import resolve_config
from lamaml.config.schema import SETTINGS
from lamaml.data import BENCHMARKS
from lamaml.data.vision import CIFAR_MEAN, CIFAR_STD, split_image_stream
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch, train
from lamaml.engine.run import run
from lamaml.methods.lookahead import LookaheadMetaLearner, LookaheadOptions
from lamaml.methods.vr_mcl import VRMCLParams
from lamaml.models import build_model
from test_lookahead_pins import PATHS, TIGHT, batch, build, clipped, reference_look_ahead, set_rates, state
from test_vision import fake_images

MNIST = ("mnist-rotations", "mnist-permutations", "mnist-many-permutations")


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def fixed_meta_batch(learner, meta_x, meta_y):
    learner.meta_batch = lambda x, y, task: (meta_x, meta_y, torch.zeros(len(meta_y), dtype=torch.long))


# -- the update, against the reference -------------------------------------------------------------

@pytest.mark.parametrize("fast_path, second_order", [(True, False), (False, False), (False, True)],
                         ids=["fast-path", "autograd-path", "second-order"])   # second order: autograd only
@pytest.mark.parametrize("grad_clip_norm", [0.05, None], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("rate_gradient", ["both", "current"])
def test_each_step_is_storm_over_the_meta_gradients_at_the_weights_and_at_the_previous_weights(
        fast_path, second_order, grad_clip_norm, rate_gradient, double):
    """Three steps, a task switch before the third: alpha by clip(clip(a) + a') (or clip(a)), the
    momentum m = clip(g) + r (m - clip(g')), the weights by opt_wt * m, theta_{t-1} kept."""
    r, eta, beta, chunks = 0.3, 0.2, 0.15, [(0, 3), (3, 6)]
    learner = build("vr-mcl", fast_path, vr_momentum=r, opt_lr=eta, opt_wt=beta, inner_steps=2,
                    second_order=second_order, grad_clip_norm=grad_clip_norm, inner_clamp=0.5,
                    rate_gradient=rate_gradient)
    set_rates(learner, 0.05, 0.4)
    theta, alpha = state(learner)
    previous, momentum = theta, None
    learner.begin_task(0)
    for step in range(3):
        if step == 2:                                        # a new task: no look back across it
            learner.begin_task(1)
            previous = theta
        x, y = batch(6, seed=10 + step)
        meta_x, meta_y = batch(9, seed=20 + step)
        fixed_meta_batch(learner, meta_x, meta_y)
        learner.observe(x, y, 0, first_sight=False)

        look = dict(chunks=chunks, relu_in_inner=False, inner_clamp=0.5, second_order=second_order)
        _, _, g, a = reference_look_ahead(theta, alpha, x, y, meta_x, meta_y, **look)
        _, _, g_prev, a_prev = reference_look_ahead(previous, alpha, x, y, meta_x, meta_y, **look)
        g, g_prev = clipped(g, grad_clip_norm), clipped(g_prev, grad_clip_norm)
        if rate_gradient == "both":
            a = [c + p for c, p in zip(clipped(a, grad_clip_norm), a_prev)]
        alpha = [al - eta * ai for al, ai in zip(alpha, clipped(a, grad_clip_norm))]
        momentum = g if momentum is None else [gi + r * (mi - pi) for gi, mi, pi in zip(g, momentum, g_prev)]
        previous, theta = theta, [t - beta * m for t, m in zip(theta, momentum)]

        torch.testing.assert_close(flat(learner.weights.values()).detach(), flat(theta), **TIGHT)
        torch.testing.assert_close(learner.state.rates, flat(alpha), **TIGHT)
        torch.testing.assert_close(learner.momentum, flat(momentum), **TIGHT)
        torch.testing.assert_close(learner.previous_weights, flat(previous), **TIGHT)
    assert not torch.equal(learner.previous_weights, learner.state.weights)


@PATHS
def test_with_no_momentum_and_the_current_rate_gradient_it_is_sync_la_maml_exactly(fast_path, double):
    """r = 0 and the rates from the current look-ahead alone: the option's path reduces bit for bit to
    the core's plain step (Sync La-MAML, the same values), replay draws included."""
    shared = dict(opt_lr=0.2, opt_wt=0.3, alpha_init=0.1, inner_steps=2, grad_clip_norm=0.5, inner_clamp=1.0,
                  relu_in_inner=False, replay_with_replacement=False, memories=200, replay_batch_size=4)
    vr = build("vr-mcl", fast_path, vr_momentum=0.0, rate_gradient="current", second_order=False, **shared)
    sync = build("sync-la-maml", fast_path, **shared)
    for i in range(6):
        x, y = batch(6, seed=i)
        # one glance: Sync's batch enters memory after its first glance, VR-MCL's after its last
        losses = [learn_batch(learner, x, y, 0, glances=1, first_epoch=True) for learner in (vr, sync)]
        assert torch.equal(*losses)
    assert torch.equal(vr.state.weights, sync.state.weights) and torch.equal(vr.state.rates, sync.state.rates)


def test_the_look_ahead_at_the_previous_weights_matches_finite_differences_and_leaves_the_model_alone(double):
    """Second order at weights other than the model's (``LookaheadState.at``): the meta-gradients of
    weights and rates equal central differences of the reference meta-loss there."""
    learner = build("vr-mcl", fast_path=False, second_order=True, inner_steps=2, grad_clip_norm=None)
    set_rates(learner, 0.1, 0.5)
    before = learner.state.weights.clone()
    elsewhere = before + 0.1 * torch.randn(before.shape, generator=torch.Generator().manual_seed(7))
    x, y = batch(4, seed=1)
    meta_x, meta_y = batch(6, seed=2)
    meta = (meta_x, meta_y, torch.zeros(6, dtype=torch.long))
    result = learner.backend(learner.state.at(elsewhere), (x, y, 0), meta, learner.plan(len(x)))
    assert torch.equal(learner.state.weights, before)

    def meta_loss(weights, rates):
        theta = [t.clone() for t in learner.state.named(weights).values()]
        alpha = [a.clone() for a in learner.state.named(rates).values()]
        return reference_look_ahead(theta, alpha, x, y, meta_x, meta_y, chunks=[(0, 2), (2, 4)], relu_in_inner=False,
                                    inner_clamp=learner.params.inner_clamp, second_order=True)[0].item()
    eps = 1e-6
    for which, analytic in (("weights", result.weights), ("rates", result.rates)):
        for i in range(len(analytic)):
            point = {"weights": elsewhere.clone(), "rates": learner.state.rates.clone()}
            point[which][i] += eps
            up = meta_loss(point["weights"], point["rates"])
            point[which][i] -= 2 * eps
            down = meta_loss(point["weights"], point["rates"])
            assert analytic[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), (which, i)


def test_a_batch_enters_memory_after_its_last_glance_in_its_first_epoch_only():
    learner = build("vr-mcl", second_order=False, memories=50)
    x, y = batch(6, seed=0)
    learn_batch(learner, x, y, 0, glances=3, first_epoch=True)
    assert learner.memory.size == 6 and learner.memory.n_seen == 6
    learn_batch(learner, x, y, 0, glances=3, first_epoch=False)             # a later epoch
    assert learner.memory.n_seen == 6


def test_a_variant_with_variance_reduction_must_declare_its_momentum_and_cannot_follow_the_replay_gradient():
    with pytest.raises(TypeError, match="vr_momentum and rate_gradient"):
        class Missing(LookaheadMetaLearner):   # noqa: F841
            name, summary = "missing", ""
            options = LookaheadOptions(learn_lr=False, sync_update=False, variance_reduction=True)
    with pytest.raises(TypeError, match="replay_weight_gradient"):
        class Both(LookaheadMetaLearner):      # noqa: F841
            name, summary, Params = "both", "", VRMCLParams
            options = LookaheadOptions(learn_lr=True, sync_update=True, variance_reduction=True,
                                       replay_weight_gradient=True)


def test_the_defaults_are_the_authors_readme_values():
    p = VRMCLParams()
    assert (p.opt_lr, p.alpha_init, p.opt_wt, p.vr_momentum) == (0.25, 0.1, 0.35, 0.15)
    assert (p.grad_clip_norm, p.inner_clamp, p.replay_batch_size, p.memories) == (1.0, 1.0, 32, 1000)
    assert (p.inner_steps, p.second_order, p.relu_in_inner) == (4, True, False)
    assert (p.replay_with_replacement, p.meta_loss, p.rate_gradient) == (False, "mean", "both")


# -- checkpoints and seeds -------------------------------------------------------------------------

def test_a_checkpoint_keeps_the_previous_weights_and_the_momentum_and_continues_exactly(double):
    def fresh(seed):
        learner = build("vr-mcl", second_order=False, seed=seed, memories=20, replay_batch_size=4)
        learner.generator.manual_seed(seed)
        return learner
    original = fresh(0)
    original.begin_task(0)
    for i in range(3):
        learn_batch(original, *batch(6, seed=i), 0, glances=2, first_epoch=True)
    saved = original.state_dict()
    assert torch.equal(saved["previous_weights"], original.previous_weights)
    assert torch.equal(saved["momentum"], original.momentum) and original.momentum.abs().sum() > 0
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    restored = fresh(1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for i in range(3, 6):
        losses = [learn_batch(learner, *batch(6, seed=i), 0, glances=2, first_epoch=True)
                  for learner in (original, restored)]
        assert torch.equal(*losses)
    for name in ("weights", "rates"):
        assert torch.equal(getattr(original.state, name), getattr(restored.state, name))
    assert torch.equal(original.momentum, restored.momentum)


def test_the_same_seed_gives_the_same_run_and_another_seed_another(data_dir):
    def matrix(seed):
        config = resolve_config("mnist-rotations", "vr-mcl", {"samples_per_task": 60}, tasks=2, seed=seed)
        return run(config, data_dir, download=False)["acc_matrix"]
    first = matrix(0)
    assert matrix(0) == first and matrix(1) != first


# -- every benchmark -------------------------------------------------------------------------------

@pytest.mark.parametrize("bench", MNIST)
def test_vr_mcl_runs_two_tasks_of_each_mnist_benchmark(bench, data_dir):
    config = resolve_config(bench, "vr-mcl", {"samples_per_task": 60}, tasks=2)
    metrics = run(config, data_dir, download=False)
    matrix = np.array(metrics["acc_matrix"], dtype=float)
    assert matrix.shape == (2, 2) and np.isfinite(matrix).all() and metrics["updates"] == 2 * 6 * config.glances


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("bench", ["cifar100", "tinyimagenet"])
def test_vr_mcl_runs_two_tasks_with_task_heads_on_images(bench, setting):
    torch.manual_seed(0)
    stream = split_image_stream("fake", fake_images(side=8), 2, 0, 20, CIFAR_MEAN, CIFAR_STD, 63 / 255)
    config = resolve_config(bench, "vr-mcl", {"glances": 1, "epochs": 1, "model": "mlp"}, tasks=2, setting=setting)
    learner = build_method("vr-mcl", build_model(config.model, stream.input_shape, stream.n_outputs),
                           config.method_params(), 0)
    learner.use_task_heads(stream.head_mask())
    result = train(learner, stream, epochs=1, batch_size=config.batch_size, glances=1,
                   generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), eval_batch_size=1000)
    assert np.isfinite(result.acc_matrix).all() and learner.memory.size == 40
    assert learner.momentum is not None and torch.isfinite(learner.momentum).all()


def test_presets_keep_la_mamls_protocol_and_take_the_vr_mcl_readme_values():
    for benchmark in BENCHMARKS:
        for setting in SETTINGS:
            mine = resolve_config(benchmark, "vr-mcl", setting=setting)
            la_maml = resolve_config(benchmark, "la-maml", setting=setting)
            fields = ("glances", "epochs", "batch_size", "model", "init")
            assert [getattr(mine, f) for f in fields] == [getattr(la_maml, f) for f in fields], (benchmark, setting)
            assert mine.params["memories"] == la_maml.params["memories"] and mine.params["replay_batch_size"] == 10
            assert {k: mine.params[k] for k in ("alpha_init", "opt_lr", "opt_wt", "vr_momentum", "inner_steps")} == \
                {"alpha_init": 0.1, "opt_lr": 0.25, "opt_wt": 0.35, "vr_momentum": 0.15, "inner_steps": 2}
            assert mine.params["second_order"] and mine.params["grad_clip_norm"] == 1.0


def test_lamaml_list_shows_vr_mcl_with_its_presets():
    from lamaml.experiments.catalog import catalog
    text = catalog()
    assert "\n  vr-mcl " in text and "vr_momentum=0.15" in text


def vr_mcl_on_a_small_conv_net_after_four_batches(**params):
    from torch import nn
    from lamaml.methods import method_class
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 6))
    cls = method_class("vr-mcl")
    learner = cls(net, cls.Params(memories=20, replay_batch_size=4, inner_steps=2, **params),
                  torch.Generator().manual_seed(0))
    learner.use_task_heads(torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool))
    g = torch.Generator().manual_seed(1)
    losses = []
    for task in (0, 0, 1, 1):
        if task != learner.current_task:
            learner.begin_task(task)
        x, y = torch.randn(6, 3, 8, 8, generator=g), 3 * task + torch.randint(0, 3, (6,), generator=g)
        losses.append(learner.observe(x, y, task, first_sight=True))
        learner.end_batch(x, y, task, first_sight=True)
    return learner, torch.stack(losses)


def test_the_two_look_aheads_side_by_side_give_a_one_thread_runs_numbers_to_the_bit(threads):
    """Two training threads: the look-aheads from theta_t and theta_{t-1} on one worker thread each."""
    threads(1)
    alone, losses_alone = vr_mcl_on_a_small_conv_net_after_four_batches()
    threads(2)
    split, losses_split = vr_mcl_on_a_small_conv_net_after_four_batches()
    assert torch.equal(losses_alone, losses_split)
    for a, b in [(alone.state.weights, split.state.weights), (alone.state.rates, split.state.rates),
                 (alone.momentum, split.momentum), (alone.previous_weights, split.previous_weights)]:
        assert torch.equal(a, b)
    assert split.side_by_side(2, True) == 2 and split.side_by_side(2, False) == 1
    taken = []
    split.both_lookaheads = lambda *args, original=split.both_lookaheads: taken.append(1) or original(*args)
    split.observe(torch.randn(6, 3, 8, 8), torch.randint(3, 6, (6,)), 1, first_sight=False)
    assert taken == [1]                                    # the side-by-side path ran
