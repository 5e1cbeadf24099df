"""When samples enter memory, how the IID oracle batches, and GEM's dual: each as the authors' code does it.

Each test pins one behaviour of their run (eralg4.py, gem.py, agem.py, lamaml_base.py, iid2.py with
multi_task_loader.py) that an earlier version of ours got wrong.
"""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from lamaml.config import resolve_config
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch, train
from lamaml.errors import UserError
from lamaml.methods.qp import project_to_cone

from lamaml.data.vision import CIFAR_MEAN, CIFAR_STD, split_image_stream
from lamaml.models import build_model
from test_vision import fake_images


def tiny_net(inputs=4, outputs=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(inputs, 5), torch.nn.ReLU(), torch.nn.Linear(5, outputs))


def batch(n=4, seed=0, inputs=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, inputs, generator=g), torch.randint(0, 3, (n,), generator=g)


def make(name, **params):
    return build_method(name, tiny_net(), params, 0)


def memory_after_each_glance(method, x, y, glances, epochs=1, attribute="size"):
    """The memory's size (or samples offered) after each glance of the loop's protocol, and after each batch."""
    seen = []
    for epoch in range(epochs):
        learn_batch(method, x, y, 0, glances=glances, first_epoch=epoch == 0,
                    after_update=lambda glance: seen.append(getattr(method.memory, attribute)))
        seen.append(("batch done", getattr(method.memory, attribute)))
    return seen


def test_er_pushes_a_batch_only_after_its_last_glance_so_no_glance_replays_it():
    er = make("er", memories=50, replay_batch_size=10)
    assert memory_after_each_glance(er, *batch(), glances=3) == [0, 0, 0, ("batch done", 4)]


def test_er_offers_every_epochs_batches_to_memory_as_eralg4():
    er = make("er", memories=50)
    assert memory_after_each_glance(er, *batch(), glances=2, epochs=2, attribute="n_seen")[-1] == ("batch done", 8)
    once = make("er", memories=50, push_every_epoch=False)
    assert memory_after_each_glance(once, *batch(), glances=2, epochs=2, attribute="n_seen")[-1] == ("batch done", 4)


def test_la_er_pushes_after_the_last_glance_on_every_epoch_while_la_maml_pushes_once_at_first_sight():
    la_er = make("la-er", memories=50, inner_steps=2)
    la_maml = make("la-maml", memories=50)
    x, y = batch()
    assert memory_after_each_glance(la_er, x, y, glances=2, epochs=2, attribute="n_seen") == \
        [0, 0, ("batch done", 4), 4, 4, ("batch done", 8)]
    assert memory_after_each_glance(la_maml, x, y, glances=2, epochs=2, attribute="n_seen") == \
        [4, 4, ("batch done", 4), 4, 4, ("batch done", 4)]


@pytest.mark.parametrize("name", ["gem", "a-gem"])
def test_gem_and_a_gem_add_a_batch_to_memory_once_however_many_glances(name):
    method = make(name, n_memories=10)
    learn_batch(method, *batch(), 0, glances=3, first_epoch=True)
    assert method.memory.filled[0] == 4 and method.memory.cursor[0] == 4


def test_ewc_counts_a_batch_once_towards_its_fisher_samples_however_many_glances():
    ewc = make("ewc", n_memories=10)
    ewc.begin_task(0)
    learn_batch(ewc, *batch(), 0, glances=3, first_epoch=True)
    assert len(ewc.task_x) == 4


def test_snapshot_memory_replays_the_live_memory_on_the_first_task_and_a_frozen_copy_after():
    method = make("la-maml", memories=50, snapshot_memory=True)
    method.begin_task(0)
    for b in range(2):
        method.observe(*batch(seed=b), 0, first_sight=True)
    assert method.replay_source is method.memory and method.memory.size == 8   # task 0 replays what it saw
    method.begin_task(1)
    method.observe(*batch(seed=2), 1, first_sight=True)
    assert method.replay_source is not method.memory
    assert method.replay_source.size == 8 and method.memory.size == 12     # frozen at the switch


@pytest.mark.parametrize("margin, eps", [(0.0, 0.0), (0.5, 0.0), (0.5, 1e-3), (0.5, 0.3), (0.0, 0.3)])
def test_the_gem_projection_solves_the_gem_codes_dual_with_its_margin_and_ridge(margin, eps):
    """project2cone2's quadprog problem: min 1/2 v'(GG' + eps I)v + (Gg)'v  s.t. v >= margin; g~ = G'v + g."""
    rng = np.random.default_rng(3)
    G, g = rng.normal(size=(3, 12)), rng.normal(size=12)
    G[0] = -g + 0.1 * rng.normal(size=12)                 # one past task in strong conflict
    P, q = G @ G.T + eps * np.eye(3), G @ g
    dual = minimize(lambda v: 0.5 * v @ P @ v + q @ v, np.full(3, margin + 1.0), jac=lambda v: P @ v + q,
                    bounds=[(margin, None)] * 3, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    expected = G.T @ dual.x + g
    ours = project_to_cone(torch.tensor(g), torch.tensor(G), margin, eps).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_the_iid_oracles_authors_batches_hold_four_tasks_of_eight_distinct_samples():
    iid = build_method("iid", tiny_net(), {"iterations": 7, "tasks_per_batch": 4}, 0)
    tasks = torch.arange(10).repeat_interleave(30)
    batches = list(iid.joint_batches(tasks, 32, torch.Generator().manual_seed(0)))
    assert len(batches) == 7
    for rows in batches:
        assert len(rows) == 32 and len(set(rows.tolist())) == 32
        assert sorted(torch.bincount(tasks[rows], minlength=10).tolist())[-4:] == [8, 8, 8, 8]
        assert (torch.bincount(tasks[rows], minlength=10) > 0).sum() == 4


def test_the_iid_preset_trains_iterations_batches_per_epoch_through_the_engine():
    stream = split_image_stream("fake", fake_images(side=8), 2, 0, 20, CIFAR_MEAN, CIFAR_STD, 63 / 255)
    config = resolve_config("cifar100", "iid", {"epochs": 2, "model": "mlp", "iterations": 6}, tasks=2,
                            setting="multi")
    assert (config.batch_size, config.params["tasks_per_batch"]) == (32, 4)   # the authors' sampler
    iid = build_method("iid", build_model("mlp", stream.input_shape, stream.n_outputs), config.method_params(), 0)
    iid.use_task_heads(stream.head_mask())
    result = train(iid, stream, epochs=2, batch_size=32, glances=1, generator=torch.Generator().manual_seed(0),
                   device=torch.device("cpu"), eval_batch_size=1000)
    assert result.updates == 12


def test_the_authors_vision_iid_runs_5000_batches_an_epoch():
    for benchmark in ("cifar100", "tinyimagenet"):
        params = resolve_config(benchmark, "iid", setting="multi").params
        assert (params["iterations"], params["tasks_per_batch"]) == (5000, 4)


def test_a_batch_that_four_tasks_cannot_share_evenly_is_refused():
    with pytest.raises(UserError, match="batch_size=30 is not a multiple of tasks_per_batch=4"):
        resolve_config("cifar100", "iid", {"batch_size": 30, "tasks_per_batch": 4}, setting="multi")


def test_meta_bgd_pushes_a_batch_during_its_first_draw_so_the_second_draw_may_replay_it():
    """meta-bgd.py pushes inside draw 0 of glance 0 at epoch 0; the next draws sample from a pool holding it."""
    method = make("meta-bgd", memories=50, train_mc_iters=3, inner_steps=2, second_order=False)
    pool_sizes, meta_batch = [], method.meta_batch
    method.meta_batch = lambda *args: pool_sizes.append(method.memory.size) or meta_batch(*args)
    x, y = batch()
    for epoch in range(2):
        learn_batch(method, x, y, 0, glances=2, first_epoch=epoch == 0)
    assert pool_sizes[:3] == [0, 4, 4]               # first sight: draw 0 before the push, draws 1-2 after
    assert method.memory.n_seen == 4                 # and only then: later glances and epochs push nothing
