"""iCaRL's exemplars, distillation and nearest-mean prediction; Meta-BGD's Bayesian update."""
import math
import threading

import pytest
import torch
from torch import nn

from lamaml.methods import method_class
from lamaml.methods.icarl import herding
from lamaml.models.convnet import ConvNet


def make(name, model, seed=0, **params):
    cls = method_class(name)
    return cls(model, cls.Params(**params), torch.Generator().manual_seed(seed))


def heads(tasks, per_task):
    mask = torch.zeros(tasks, tasks * per_task, dtype=torch.bool)
    for t in range(tasks):
        mask[t, t * per_task:(t + 1) * per_task] = True
    return mask


# -- iCaRL ---------------------------------------------------------------------------------

def test_herding_picks_the_sample_at_the_mean_first_then_keeps_the_running_mean_close():
    features = torch.tensor([[0.0, 0.0], [4.0, 0.0], [2.0, 0.0], [0.0, 6.0], [2.0, 2.0]])
    members = torch.tensor([True, True, True, False, True])          # row 3 is another class
    order = herding(features, 3, members)
    # members' mean is (2, 0.5): row 2 (gap 0.25) first; then row 4 brings the pair's mean to (2, 1);
    # rows 0 and 1 tie for the third place and the first one wins
    assert order.tolist() == [2, 4, 0]
    assert 3 not in order.tolist() and len(set(order.tolist())) == 3
    assert herding(features, 10, members).numel() == 4                 # never more than the class has


def test_herding_order_is_exactly_the_greedy_mean_matching_rule():
    torch.manual_seed(0)
    features = torch.randn(30, 5)
    members = torch.ones(30, dtype=torch.bool)
    order = herding(features, 6, members).tolist()
    mean, chosen = features.mean(0), []
    for _ in range(6):
        gaps = {i: float(((mean - (features[chosen].sum(0) + features[i]) / (len(chosen) + 1)) ** 2).sum())
                for i in range(30) if i not in chosen}
        chosen.append(min(gaps, key=gaps.get))
    assert order == chosen


def _icarl_on_two_tasks(n_memories=20):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 4))
    icarl = make("icarl", model, n_memories=n_memories, lr=0.1)
    icarl.use_task_heads(heads(2, 2))
    for task in range(2):
        icarl.begin_task(task)
        for _ in range(5):
            y = torch.randint(2 * task, 2 * task + 2, (10,))
            x = torch.randn(10, 4) + 3 * nn.functional.one_hot(y, 4).float()
            icarl.observe(x, y, task, first_sight=True)
        icarl.end_task(task)
    return icarl


def test_icarl_shares_its_budget_equally_and_old_classes_keep_their_first_exemplars():
    icarl = _icarl_on_two_tasks(n_memories=20)
    ex = icarl.exemplars
    counts = {c: int((ex["cls"] == c).sum()) for c in range(4)}
    assert counts == {0: 5, 1: 5, 2: 5, 3: 5}                           # 20 / 4 classes seen
    assert (ex["task"][ex["cls"] < 2] == 0).all() and (ex["task"][ex["cls"] >= 2] == 1).all()
    assert (ex["rank"][ex["cls"] == 0] == torch.arange(5)).all()      # the first five of ten, in order
    assert torch.allclose(ex["logits"], icarl.model(ex["x"]), atol=1e-6)   # targets: outputs at task end


def test_icarl_distillation_vanishes_when_the_outputs_equal_the_stored_ones_and_grows_otherwise():
    icarl = _icarl_on_two_tasks()
    assert icarl.distillation().item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        icarl.model[2].weight.add_(torch.randn_like(icarl.model[2].weight))
    assert icarl.distillation().item() > 1e-3


def test_icarl_distillation_is_the_authors_kldivloss_mean_per_task_times_strength_and_outputs():
    """One exemplar per class, so the draw is fixed: sum over tasks of KLDivLoss(mean) x 2 x 5 outputs/task."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 10))
    icarl = make("icarl", model, n_memories=10, memory_strength=2.0)     # 10 classes seen: one exemplar each
    icarl.use_task_heads(heads(2, 5))
    for task in range(2):
        icarl.begin_task(task)
        y = torch.arange(5 * task, 5 * task + 5).repeat(4)
        icarl.observe(torch.randn(20, 4), y, task, first_sight=True)
        icarl.end_task(task)
    with torch.no_grad():
        model[2].weight.mul_(1.7)
    ex = icarl.exemplars
    expected = 0.0
    for task in range(2):
        icarl.begin_task(task)
        rows = ex["task"] == task
        cols = torch.arange(5 * task, 5 * task + 5)
        log_p = torch.log_softmax(model(ex["x"][rows])[:, cols], 1)
        target = torch.softmax(ex["logits"][rows][:, cols], 1)
        expected += torch.nn.functional.kl_div(log_p, target, reduction="sum") / target.numel() * 2.0 * 5
    assert icarl.distillation().item() == pytest.approx(expected.item(), rel=1e-5)


def _icarl_on_three_tasks(one_forward: bool, model: nn.Module) -> tuple[object, list[int]]:
    """iCaRL on a float64 conv net over three tasks (two earlier ones distil on the third); also how many
    forward calls each update made."""
    icarl = make("icarl", model, n_memories=12, lr=0.1)
    icarl.use_task_heads(heads(3, 2))
    icarl.one_forward = one_forward
    calls, current = [], [[]]        # images per forward call, in each update
    model.register_forward_pre_hook(lambda module, args: current[0].append(len(args[0])))
    g = torch.Generator().manual_seed(1)
    for task in range(3):
        icarl.begin_task(task)
        for _ in range(3):
            x = torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64)
            y = 2 * task + torch.randint(0, 2, (6,), generator=g)
            icarl.observe(x, y, task, first_sight=True)
            calls.append(current[0])
            current[0] = []
        icarl.end_task(task)
    return icarl, calls


def test_icarl_one_forward_for_the_batch_and_its_exemplars_equals_two_passes():
    runs = {}
    for one in (True, False):
        torch.manual_seed(0)
        runs[one] = _icarl_on_three_tasks(one, ConvNet((3, 8, 8), 6, filters=4, hidden=8).double())
    (joint, joint_calls), (apart, apart_calls) = runs[True], runs[False]
    # the third task's updates distil 4 exemplars (one per earlier class): one call of 6 + 4 images, or two
    assert joint_calls[-1] == [10] and apart_calls[-1] == [6, 4]
    assert all(len(c) == 1 for c in joint_calls[:3])                       # task 0: nothing to distil
    for a, b in zip(joint.model.parameters(), apart.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(joint.exemplars["logits"], apart.exemplars["logits"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("running_stats", [True, False])
def test_icarl_keeps_two_passes_for_a_model_with_batch_norm(running_stats):
    """Batch norm mixes a batch's statistics, also without running statistics (and so without buffers)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8, track_running_stats=running_stats), nn.ReLU(),
                          nn.Linear(8, 4))
    icarl = make("icarl", model, n_memories=8, lr=0.1)
    assert not icarl.one_forward
    icarl.use_task_heads(heads(2, 2))
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    for task in range(2):
        icarl.begin_task(task)
        calls.clear()
        icarl.observe(torch.randn(6, 4), 2 * task + torch.randint(0, 2, (6,)), task, first_sight=True)
        icarl.end_task(task)
    assert calls[:2] == [6, 2]                 # task 1: the batch, then one exemplar per earlier class


def test_icarl_takes_one_pass_by_default_on_the_papers_nets():
    assert make("icarl", ConvNet((3, 8, 8), 6, filters=4, hidden=8)).one_forward
    assert make("icarl", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))).one_forward
    assert make("icarl", nn.Sequential(nn.Linear(4, 8), nn.InstanceNorm1d(8), nn.Linear(8, 4))).one_forward


def test_icarl_predicts_the_nearest_class_mean_of_exemplar_logits_within_the_task():
    icarl = _icarl_on_two_tasks()
    x = torch.randn(50, 4)
    logits = icarl.model(x)
    ex = icarl.exemplars
    means = torch.stack([icarl.model(ex["x"][ex["cls"] == c]).mean(0) for c in (2, 3)])   # recomputed
    expected = 2 + torch.cdist(logits, means).argmin(1)
    assert torch.equal(icarl.predict(x, 1).argmax(1), expected)
    assert set(icarl.predict(x, 0).argmax(1).tolist()) <= {0, 1}


def test_icarl_with_fewer_exemplars_than_classes_drops_the_oldest_and_scores_them_uniformly():
    torch.manual_seed(0)
    icarl = make("icarl", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6)), n_memories=5)
    icarl.use_task_heads(heads(3, 2))
    for task in range(3):
        icarl.begin_task(task)
        y = torch.arange(2 * task, 2 * task + 2).repeat(5)
        icarl.observe(torch.randn(10, 4), y, task, first_sight=True)
        icarl.end_task(task)
    assert icarl.classes_seen == 6 and len(icarl.exemplars["x"]) == 0       # 5 // 6 = 0 per class
    assert torch.equal(icarl.predict(torch.randn(3, 4), 0)[:, :2], torch.zeros(3, 2))
    icarl.observe(torch.randn(10, 4), torch.arange(4, 6).repeat(5), 2, first_sight=False)   # no distillation term


def test_icarl_without_task_heads_keeps_exemplars_per_task_and_class():
    torch.manual_seed(0)
    icarl = make("icarl", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), n_memories=12)
    for task in range(2):
        icarl.begin_task(task)
        icarl.observe(torch.randn(30, 4), torch.arange(3).repeat(10), task, first_sight=True)
        icarl.end_task(task)
    ex = icarl.exemplars
    assert len(ex["x"]) == 12 and {(t, c) for t, c in zip(ex["task"].tolist(), ex["cls"].tolist())} == \
        {(t, c) for t in range(2) for c in range(3)}
    assert set(icarl.predict(torch.randn(5, 4), 1).argmax(1).tolist()) <= {0, 1, 2}


def test_icarl_without_exemplars_for_a_task_scores_its_classes_uniformly():
    torch.manual_seed(0)
    icarl = make("icarl", nn.Linear(4, 4))
    icarl.use_task_heads(heads(2, 2))
    scores = icarl.predict(torch.randn(3, 4), 1)
    assert torch.equal(scores[:, 2:], torch.zeros(3, 2)) and torch.isinf(scores[:, :2]).all()


# -- Meta-BGD ------------------------------------------------------------------------------

def test_bgd_step_follows_the_closed_form_of_zeno_et_al():
    bgd = make("meta-bgd", nn.Linear(1, 1, bias=False), std_init=0.1, mean_eta=2.0, train_mc_iters=2)
    bgd.mean, bgd.std = [torch.tensor([[0.5]])], [torch.tensor([[0.1]])]
    bgd.variables = [bgd.model.weight]
    bgd.bgd_step([torch.tensor([[0.6]])], [torch.tensor([[4.0]])])    # sums over 2 draws: E[g]=0.3, E[g eps]=2
    assert bgd.mean[0].item() == pytest.approx(0.5 - 2.0 * 0.01 * 0.3)
    assert bgd.std[0].item() == pytest.approx(0.1 * math.sqrt(1 + 0.1 ** 2) - 0.01 * 2 / 2)
    assert bgd.model.weight.item() == pytest.approx(bgd.mean[0].item())   # predictions use the means


@pytest.mark.parametrize("on_rates", [True, False])
def test_meta_bgd_moves_the_rates_only_when_they_are_random_variables(on_rates):
    torch.manual_seed(0)
    bgd = make("meta-bgd", nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)), bgd_on_rates=on_rates,
               alpha_init=0.1)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    bgd.observe(x, y, 0, first_sight=True)
    moved = any(not torch.allclose(a, torch.full_like(a, 0.1)) for a in bgd.alpha.values())
    assert moved == on_rates
    assert torch.equal(bgd.state.weights, bgd.mean[0])                      # the network holds the means
    assert all((s > 0).all() for s in bgd.std)


def test_meta_bgd_with_vanishing_std_is_sgd_on_the_c_maml_meta_gradient(double):
    """sigma -> 0: every draw is the mean, and mu moves by mean_eta sigma^2 B times the (clipped) meta-gradient."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    net2 = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    net2.load_state_dict(net.state_dict())
    before = [p.detach().clone() for p in net.parameters()]
    std, eta, batch = 1e-6, 1e10, 10                                       # an SGD rate of 0.1
    bgd = make("meta-bgd", net, std_init=std, mean_eta=eta, memories=0, bgd_on_rates=False, grad_clip_norm=None,
               train_mc_iters=1)
    cmaml = make("c-maml", net2, opt_wt=eta * std * std * batch, memories=0, alpha_init=0.1, grad_clip_norm=None,
                 second_order=True, inner_steps=3, inner_clamp=2.0, relu_in_inner=False)
    x, y = torch.randn(batch, 4), torch.randint(0, 3, (batch,))
    bgd.observe(x, y, 0, first_sight=True)
    cmaml.observe(x, y, 0, first_sight=True)
    for a, b, a0 in zip(net.parameters(), net2.parameters(), before):
        assert (b - a0).abs().max() > 1e-3                                  # a real step was taken
        assert torch.allclose(a - a0, b - a0, rtol=1e-4, atol=1e-6)        # the same step (steps ~1e-2)


def test_meta_bgd_averages_g_and_g_eps_over_draws_as_bgd_needs():
    """With meta-loss 1/2 ||theta||^2 the gradient at mu + sigma eps is itself, so over many draws
    E[g] = B mu and E[g eps] = B sigma (B: batch size, BGD's sum-of-losses scale)."""
    torch.manual_seed(0)
    bgd = make("meta-bgd", nn.Linear(3, 2), std_init=0.5, memories=0, bgd_on_rates=False, grad_clip_norm=None,
               train_mc_iters=4000)
    bgd.backend.meta_loss = lambda weights, *rest: (sum(0.5 * (w * w).sum() for w in weights.values()), weights)
    captured = {}
    bgd.bgd_step = lambda g, ge: captured.update(g=g, ge=ge)
    mean = [m.clone() for m in bgd.mean]
    bgd.observe(torch.randn(5, 3), torch.randint(0, 2, (5,)), 0, first_sight=True)
    for m, g, ge in zip(mean, captured["g"], captured["ge"]):
        assert torch.allclose(g / 4000, 5 * m, atol=0.15)
        assert torch.allclose(ge / 4000, torch.full_like(m, 5 * 0.5), atol=0.15)


def small_conv_bgd(**params):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 6))
    bgd = make("meta-bgd", net, **params)
    bgd.use_task_heads(heads(2, 3))
    return bgd


def draw_workers(bgd):
    return bgd.side_by_side(bgd.params.train_mc_iters, bgd.params.parallel_draws)


def bgd_after_three_batches(**params):
    bgd = small_conv_bgd(**params)
    g = torch.Generator().manual_seed(1)
    losses = []
    for task in (0, 0, 1):
        x, y = torch.randn(10, 3, 8, 8, generator=g), 3 * task + torch.randint(0, 3, (10,), generator=g)
        losses.append(bgd.observe(x, y, task, first_sight=True))
    return bgd, losses


@pytest.mark.parametrize("draws", [2, 3])
def test_meta_bgds_draws_side_by_side_give_a_one_thread_runs_numbers_to_the_bit(threads, draws):
    """Two training threads: each draw's meta-gradient on one thread of its own (3 draws: two workers
    take turns), and the generator's choices in the authors' order, so every number equals one thread's."""
    threads(1)
    alone, losses_alone = bgd_after_three_batches(train_mc_iters=draws)
    assert draw_workers(alone) == 1
    threads(2)
    split, losses_split = bgd_after_three_batches(train_mc_iters=draws)
    assert draw_workers(split) == 2 and torch.get_num_threads() == 2
    assert torch.equal(torch.stack(losses_alone), torch.stack(losses_split))
    stored = alone.memory.size
    assert stored == split.memory.size == 30
    for a, b in zip(alone.mean + alone.std + [alone.state.weights, alone.memory.x[:stored]],
                    split.mean + split.std + [split.state.weights, split.memory.x[:stored]]):
        assert torch.equal(a, b)
    assert torch.equal(alone.generator.get_state(), split.generator.get_state())


def test_meta_bgd_draws_one_after_another_where_they_cannot_run_side_by_side(threads):
    threads(2)
    assert draw_workers(small_conv_bgd()) == 2
    assert draw_workers(small_conv_bgd(parallel_draws=False)) == 1
    assert draw_workers(small_conv_bgd(train_mc_iters=1)) == 1
    with_buffer = small_conv_bgd()
    with_buffer.model.register_buffer("scale", torch.ones(1))    # a copy would hold it stale
    assert draw_workers(with_buffer) == 1
    mlp = make("meta-bgd", nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), second_order=False,
               inner_steps=None, inner_clamp=None)
    assert type(mlp.backend).__name__ != "AutogradBackend" and draw_workers(mlp) == 1   # the closed form's buffers
    threads(1)
    assert draw_workers(small_conv_bgd()) == 1


def test_meta_bgd_sums_its_draws_in_draw_order_whichever_finishes_first(threads):
    threads(2)
    bgd = small_conv_bgd(train_mc_iters=3)
    drawn, results, captured = [], {}, {}
    draw, draw_gradient = bgd.draw, bgd.draw_gradient

    def recording_draw():
        sample, eps = draw()
        drawn.append((sample, eps))
        return sample, eps

    def recording_gradient(sample, *args, **kwargs):
        if sample is drawn[0][0]:
            threading.Event().wait(0.05)        # the first draw finishes last
        results[id(sample)] = out = draw_gradient(sample, *args, **kwargs)
        return out
    bgd.draw, bgd.draw_gradient = recording_draw, recording_gradient
    bgd.bgd_step = lambda g, ge: captured.update(g=g, ge=ge)
    bgd.observe(torch.randn(10, 3, 8, 8), torch.randint(0, 3, (10,)), 0, first_sight=True)
    expected_g = [torch.zeros_like(m) for m in bgd.mean]
    expected_ge = [torch.zeros_like(m) for m in bgd.mean]
    for sample, eps in drawn:
        grads = results[id(sample)][1]
        expected_g = [s + g for s, g in zip(expected_g, grads)]
        expected_ge = [s + g * e for s, g, e in zip(expected_ge, grads, eps)]
    assert len(drawn) == 3
    assert all(torch.equal(a, b) for a, b in zip(captured["g"] + captured["ge"], expected_g + expected_ge))


def test_meta_bgd_on_the_closed_form_sums_each_draw_before_the_next_overwrites_its_buffers(double):
    """A first-order MLP takes the closed form, which writes every result into the same buffers: two
    draws there equal two draws through autograd."""
    runs = []
    for fast_path in (True, False):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        bgd = make("meta-bgd", net, second_order=False, inner_steps=None, inner_clamp=None, relu_in_inner=True,
                   fast_path=fast_path)
        assert (type(bgd.backend).__name__ == "AutogradBackend") != fast_path
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            bgd.observe(torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g), 0, first_sight=True)
        runs.append(bgd.mean + bgd.std)
    for closed, autograd in zip(*runs):
        torch.testing.assert_close(closed, autograd, rtol=1e-9, atol=1e-12)


def test_meta_bgd_under_a_dispatch_mode_draws_on_this_thread_where_the_mode_sees_every_operation(threads):
    """Modes such as FlopCounterMode are per thread (bench_vision.py --floor counts with one)."""
    from torch.utils.flop_counter import FlopCounterMode
    counted = {}
    for n in (1, 2):
        threads(n)
        bgd = small_conv_bgd()
        with FlopCounterMode(display=False) as counter:
            assert draw_workers(bgd) == 1
            bgd.observe(torch.randn(10, 3, 8, 8), torch.randint(0, 3, (10,)), 0, first_sight=True)
        counted[n] = counter.get_total_flops()
    assert counted[1] == counted[2] > 0
    assert draw_workers(bgd) == 2                  # and side by side again outside it
