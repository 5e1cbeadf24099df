"""iCaRL's exemplars, distillation and nearest-mean prediction; Meta-BGD's Bayesian update."""
import math

import pytest
import torch
from torch import nn

from lamaml.methods import method_class
from lamaml.methods.icarl import herding


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
        for _ in range(5):
            y = torch.randint(2 * task, 2 * task + 2, (10,))
            x = torch.randn(10, 4) + 3 * nn.functional.one_hot(y, 4).float()
            icarl.observe(x, y, task, epoch=0, glance=0)
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


def test_icarl_predicts_the_nearest_class_mean_of_exemplar_logits_within_the_task():
    icarl = _icarl_on_two_tasks()
    x = torch.randn(50, 4)
    logits = icarl.model(x)
    means = torch.stack([icarl.exemplars["logits"][icarl.exemplars["cls"] == c].mean(0) for c in (2, 3)])
    expected = 2 + torch.cdist(logits, means).argmin(1)
    assert torch.equal(icarl.predict(x, 1).argmax(1), expected)
    assert set(icarl.predict(x, 0).argmax(1).tolist()) <= {0, 1}


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
    bgd.observe(x, y, 0, epoch=0, glance=0)
    moved = any(not torch.allclose(a, torch.full_like(a, 0.1)) for a in bgd.alpha.values())
    assert moved == on_rates
    weights = list(bgd.model.parameters())
    assert all(torch.equal(w, m) for w, m in zip(weights, bgd.mean))
    assert all((s > 0).all() for s in bgd.std)


def test_meta_bgd_with_vanishing_std_is_sgd_on_the_c_maml_meta_gradient():
    """sigma -> 0: every draw is the mean, and mu moves by mean_eta sigma^2 B times the (clipped) meta-gradient."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    net2 = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    net2.load_state_dict(net.state_dict())
    std, eta, batch = 1e-4, 1e3, 10
    bgd = make("meta-bgd", net, std_init=std, mean_eta=eta, memories=0, bgd_on_rates=False, grad_clip_norm=None)
    cmaml = make("c-maml", net2, opt_wt=eta * std * std * batch, memories=0, alpha_init=0.1, grad_clip_norm=None,
                 second_order=True, inner_steps=3, inner_clamp=2.0, relu_in_inner=False)
    x, y = torch.randn(batch, 4), torch.randint(0, 3, (batch,))
    bgd.observe(x, y, 0, epoch=0, glance=0)
    cmaml.observe(x, y, 0, epoch=0, glance=0)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
