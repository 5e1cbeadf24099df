"""ER-ACE, DER and DER++: what each loss computes, what the memory keeps, and that they run everywhere."""
import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamaml.config import resolve_config
from lamaml.config.schema import SETTINGS
from lamaml.data import BENCHMARKS
from lamaml.data.vision import CIFAR_MEAN, CIFAR_STD, split_image_stream
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch, train
from lamaml.engine.run import run
from lamaml.methods import METHODS, method_class
from lamaml.models import build_model
from test_vision import fake_images

NEW = ("er-ace", "der", "der++")


def make(name, model, seed=0, **params):
    cls = method_class(name)
    return cls(model, cls.Params(**params), torch.Generator().manual_seed(seed))


def net(inputs=4, outputs=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, 8), nn.Tanh(), nn.Linear(8, outputs))


def feed(learner, x, y, task, glances=1):
    return learn_batch(learner, x, y, task, glances=glances, first_epoch=True)


def batches(n, size=6, outputs=5, inputs=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, inputs, generator=g), torch.randint(0, outputs, (size,), generator=g)) for _ in range(n)]


# -- ER-ACE ------------------------------------------------------------------------------------------

def test_er_ace_incoming_loss_gives_no_gradient_to_the_bias_of_classes_absent_from_the_batch():
    learner = make("er-ace", net())
    x, y = torch.randn(6, 4), torch.tensor([0, 2, 2, 0, 2, 0])
    logits = learner.model(x)
    present = learner.classes_in(y, 5)
    learner.seen = present
    bias = learner.model[2].bias
    ace, = torch.autograd.grad(learner.incoming_loss(logits, y, 0, present), bias)
    assert ace[[1, 3, 4]].abs().max() == 0 and ace[[0, 2]].abs().min() > 1e-3
    plain, = torch.autograd.grad(F.cross_entropy(learner.model(x), y), bias)   # what ACE avoids
    assert plain[[1, 3, 4]].abs().min() > 1e-3
    # the authors' rule also keeps every class from the largest seen label (2) upward
    learner.params.incoming_mask = "authors"
    authors, = torch.autograd.grad(learner.incoming_loss(learner.model(x), y, 0, present), bias)
    assert authors[1] == 0 and authors[[3, 4]].abs().min() > 1e-3


def test_er_ace_moves_absent_classes_only_through_replay_and_never_unseen_ones():
    learner = make("er-ace", net(), lr=0.5, replay_batch_size=4)
    bias = learner.model[2].bias
    before = bias.detach().clone()
    feed(learner, torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]), 0)      # empty memory: incoming only
    assert torch.equal(bias[2:], before[2:]) and not torch.equal(bias[:2], before[:2])
    middle = bias.detach().clone()
    feed(learner, torch.randn(6, 4), torch.full((6,), 2), 0)                  # replays classes 0 and 1
    assert not torch.equal(bias[:2], middle[:2])                              # moved by the replay term
    assert torch.equal(bias[3:], before[3:])                                  # never seen: never moved
    assert learner.seen.tolist() == [True, True, True, False, False]


# -- DER and DER++ -----------------------------------------------------------------------------------

def test_der_stores_the_logits_of_the_last_glance_before_its_step_and_never_recomputes_them():
    learner = make("der", net(), lr=0.3)
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    learner.observe(x, y, 0, first_sight=True)
    with torch.no_grad():
        expected = learner.model(x)                       # the model the second (last) glance sees
    learner.observe(x, y, 0, first_sight=False)
    learner.end_batch(x, y, 0, first_sight=True)
    assert torch.equal(learner.memory.logits[:6], expected)
    for bx, by in batches(5):                              # memory of 200: the first batch stays put
        feed(learner, bx, by, 0)
    with torch.no_grad():
        now = learner.model(x)
    assert torch.equal(learner.memory.logits[:6], expected) and (now - expected).abs().max() > 1e-2


def test_der_mse_is_zero_for_an_unchanged_model_and_its_gradient_pulls_logits_back():
    learner = make("der", net(), lr=0.3)
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    start = copy.deepcopy(learner.model.state_dict())
    feed(learner, x, y, 0)
    learner.model.load_state_dict(start)                  # the model that produced the stored logits
    stored, tasks = learner.memory.logits[:6], learner.memory.t[:6]
    assert learner.logit_mse(learner.model(x), stored, tasks).item() < 1e-12
    delta = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.25])
    with torch.no_grad():
        learner.model[2].bias += delta                    # every logit moves by delta
    mse = learner.logit_mse(learner.model(x), stored, tasks)
    grad, = torch.autograd.grad(mse, learner.model[2].bias)
    assert mse.item() == pytest.approx(delta.pow(2).mean().item(), rel=1e-5)
    torch.testing.assert_close(grad, 2 * delta / 5)      # a descent step moves the bias back by delta's sign


def test_der_mse_reads_only_the_replayed_samples_task_head():
    learner = make("der", net(outputs=6))
    learner.use_task_heads(torch.tensor([[True] * 3 + [False] * 3, [False] * 3 + [True] * 3]))
    stored = torch.zeros(2, 6, requires_grad=False)
    logits = torch.tensor([[1.0, 2.0, 3.0, 10.0, 10.0, 10.0], [10.0, 10.0, 10.0, 1.0, 1.0, 2.0]], requires_grad=True)
    mse = learner.logit_mse(logits, stored, torch.tensor([0, 1]))
    assert mse.item() == pytest.approx((1 + 4 + 9 + 1 + 1 + 4) / 6)
    grad, = torch.autograd.grad(mse, logits)
    assert grad[0, 3:].abs().max() == 0 and grad[1, :3].abs().max() == 0


def test_der_plus_plus_loss_is_ce_plus_alpha_mse_plus_beta_ce_on_a_second_replay_batch():
    learner = make("der++", net(), alpha=0.7, beta=0.4, replay_batch_size=3)
    for bx, by in batches(3):
        feed(learner, bx, by, 0)
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    twin = learner.memory.snapshot()
    twin.generator = torch.Generator()
    twin.generator.set_state(learner.generator.get_state())
    dark, labelled = twin.sample(3, replacement=False), twin.sample(3, replacement=False)
    with torch.no_grad():
        model = learner.model
        expected = (F.cross_entropy(model(x), y) + 0.7 * F.mse_loss(model(dark[0]), dark[3])
                    + 0.4 * F.cross_entropy(model(labelled[0]), labelled[1]))
    assert learner.observe(x, y, 0, first_sight=True).item() == pytest.approx(expected.item(), rel=1e-6)


def test_der_plus_plus_draws_its_two_replay_batches_independently():
    learner = make("der++", net(inputs=1), replay_batch_size=5, lr=1e-6)
    ids = torch.arange(20.0)[:, None]
    learner.memory.add(ids, torch.zeros(20, dtype=torch.long), 0, logits=torch.zeros(20, 5))
    drawn, sample = [], learner.memory.sample

    def recorded(k, replacement):
        batch = sample(k, replacement)
        drawn.append(batch[0][:, 0].tolist())
        return batch
    learner.memory.sample = recorded
    overlaps = []
    for _ in range(400):
        drawn.clear()
        learner.observe(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), 0, first_sight=False)
        first, second = drawn
        assert len(set(first)) == len(set(second)) == 5    # without replacement within a batch
        overlaps.append(len(set(first) & set(second)))
    # independent draws of 5 from 20 share 5 * 5 / 20 = 1.25 samples on average (one draw: 5; disjoint: 0)
    assert abs(np.mean(overlaps) - 1.25) < 0.2 and min(overlaps) == 0 and max(overlaps) >= 3


# -- every benchmark, seeds, checkpoints -------------------------------------------------------------

@pytest.mark.parametrize("method", NEW)
@pytest.mark.parametrize("bench", ["mnist-rotations", "mnist-permutations", "mnist-many-permutations"])
def test_each_method_runs_two_tasks_of_each_mnist_benchmark(method, bench, data_dir):
    config = resolve_config(bench, method, {"samples_per_task": 60}, tasks=2)
    metrics = run(config, data_dir, download=False)
    matrix = np.array(metrics["acc_matrix"], dtype=float)
    # 60 samples of each task in batches of 10, each batch seen `glances` times (5 or 10: La-MAML's)
    assert matrix.shape == (2, 2) and np.isfinite(matrix).all() and metrics["updates"] == 12 * config.glances


@pytest.mark.parametrize("method", NEW)
@pytest.mark.parametrize("bench", ["cifar100", "tinyimagenet"])
def test_each_method_runs_two_tasks_with_task_heads_on_images(method, bench):
    torch.manual_seed(0)
    stream = split_image_stream("fake", fake_images(side=8), 2, 0, 20, CIFAR_MEAN, CIFAR_STD, 63 / 255)
    config = resolve_config(bench, method, {"glances": 1, "model": "mlp"}, tasks=2)
    learner = build_method(method, build_model(config.model, stream.input_shape, stream.n_outputs),
                           config.method_params(), 0)
    learner.use_task_heads(stream.head_mask())
    result = train(learner, stream, epochs=1, batch_size=config.batch_size, glances=1,
                   generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), eval_batch_size=1000)
    assert np.isfinite(result.acc_matrix).all() and learner.memory.size == 40
    if method != "er-ace":
        assert learner.memory.logits.shape == (config.params["memories"], 10)   # the full logit vector


@pytest.mark.parametrize("method", NEW)
def test_the_same_seed_gives_the_same_run_and_another_seed_another(method, data_dir):
    def matrix(seed):
        config = resolve_config("mnist-rotations", method, {"samples_per_task": 100}, tasks=2, seed=seed)
        return run(config, data_dir, download=False)["acc_matrix"]
    first = matrix(0)
    assert matrix(0) == first and matrix(1) != first


@pytest.mark.parametrize("method", sorted(name for name, cls in METHODS.items() if not cls.joint))
def test_a_method_restored_from_its_state_dict_continues_exactly(method):
    """Weights, generator and ``state_attributes`` through torch.save / load(weights_only=True)."""
    def fresh(seed):
        learner = make(method, net(seed=seed), seed=seed)
        learner.use_task_heads(None)
        return learner
    data = batches(8, outputs=5, seed=3)
    original = fresh(0)
    for i, (x, y) in enumerate(data[:4]):
        if i % 2 == 0:
            original.begin_task(i // 2)
        feed(original, x, y, i // 2, glances=2)
        if i % 2:
            original.end_task(i // 2)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = fresh(1)                                   # other weights, other generator
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for learner in (original, restored):
        learner.begin_task(2)
    for x, y in data[4:]:
        losses = [feed(learner, x, y, 2, glances=2).item() for learner in (original, restored)]
        assert losses[0] == losses[1]
    for a, b in zip(original.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)


# -- presets and listing -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", NEW)
def test_presets_give_ers_protocol_memory_and_rate_on_every_benchmark_and_setting(method):
    for benchmark, info in BENCHMARKS.items():
        for setting in SETTINGS:
            mine, er = resolve_config(benchmark, method, setting=setting), resolve_config(benchmark, "er", setting=setting)
            fields = ("glances", "epochs", "batch_size", "model", "init")
            assert [getattr(mine, f) for f in fields] == [getattr(er, f) for f in fields], (benchmark, setting)
            assert (mine.params["memories"], mine.params["lr"]) == (er.params["memories"], er.params["lr"])
            assert mine.params["replay_batch_size"] == 10
    assert resolve_config("mnist-rotations", "der++").params["beta"] == 0.5          # Mammoth's rot-mnist, 200
    assert resolve_config("cifar100", "der").params["alpha"] == 0.3                   # Mammoth's seq-cifar10, 200


def test_lamaml_list_shows_the_three_methods_with_their_presets():
    from lamaml.experiments.catalog import catalog
    text = catalog()
    for name in NEW:
        assert f"\n  {name} " in text
    assert "memories=200 lr=0.01 replay_batch_size=10 grad_clip_norm=2.0 alpha=1.0 beta=0.5" in text
