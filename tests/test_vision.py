"""Vision protocol pieces that need no data files: splits, augmentation, task-aware heads, conv nets."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamaml.config import resolve_config
from lamaml.config.schema import preset_note
from lamaml.data.images import ImageSet
from lamaml.data.vision import CIFAR_MEAN, CIFAR_STD, augment, class_order, split_image_stream, split_per_class
from lamaml.engine import build_method
from lamaml.engine.loop import train
from lamaml.errors import UserError
from lamaml.models import build_model


def fake_images(n_classes=10, per_class=20, test_per_class=4, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    train_labels = torch.arange(n_classes).repeat_interleave(per_class)
    test_labels = torch.arange(n_classes).repeat_interleave(test_per_class)
    # natural-looking statistics (mid-grey noise) plus a colour shift of each class, learnable in a few steps
    shift = torch.randint(-40, 41, (n_classes, 3, 1, 1), generator=g).float()

    def images(labels):
        noise = torch.randint(88, 169, (len(labels), 3, side, side), generator=g).float()
        return (noise + shift[labels]).clamp(0, 255).to(torch.uint8)
    return ImageSet(images(train_labels), train_labels, images(test_labels), test_labels,
                    tuple(f"class{c}" for c in range(n_classes)))


def test_the_class_order_is_a_seeded_permutation():
    assert class_order(100, 3) == class_order(100, 3) != class_order(100, 4)
    assert sorted(class_order(100, 3)) == list(range(100))


def test_ten_percent_of_each_class_is_held_out_disjointly():
    labels = torch.arange(5).repeat_interleave(500)
    train, val = split_per_class(labels, 0.1, seed=0)
    assert len(val) == 250 and len(train) == 2250 and not set(train.tolist()) & set(val.tolist())
    assert torch.bincount(labels[val]).tolist() == [50] * 5
    assert torch.equal(split_per_class(labels, 0.1, seed=0)[1], val)


def test_augmentation_crops_flips_and_jitters_as_documented():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float64).reshape(2, 3, 8, 8).remainder(256).to(torch.uint8)
    same = [augment(x, torch.Generator().manual_seed(1), padding=2) for _ in range(2)]
    assert torch.equal(*same) and same[0].shape == (2, 3, 8, 8) and same[0].dtype == torch.get_default_dtype()
    out = augment(x, torch.Generator().manual_seed(1), padding=0)            # no padding: only flips
    for i in range(2):
        image = x[i].double() / 255
        assert torch.allclose(out[i].double(), image) or torch.allclose(out[i].double(), image.flip(-1))
    padded = F.pad(x.double() / 255, (2, 2, 2, 2))
    out = augment(x, torch.Generator().manual_seed(5), padding=2)
    windows = [padded[0, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
    assert any(torch.allclose(out[0].double(), w) or torch.allclose(out[0].double(), w.flip(-1)) for w in windows)
    bright = augment(x, torch.Generator().manual_seed(2), padding=0, brightness=0.5)
    assert bright.min() >= 0 and bright.max() <= 1


def test_a_split_stream_has_five_classes_per_task_and_its_own_heads():
    data = fake_images()
    stream = split_image_stream("fake", data, n_tasks=2, seed=0, samples_per_task=None,
                                mean=CIFAR_MEAN, std=CIFAR_STD, brightness=None)
    assert len(stream) == 2 and stream.n_outputs == 10 and stream.input_shape == (3, 32, 32)
    mask = stream.head_mask()
    assert mask.tolist() == [[True] * 5 + [False] * 5, [False] * 5 + [True] * 5]
    for t, task in enumerate(stream):
        x, y = task.train()
        assert x.dtype == torch.uint8 and len(x) == 5 * 18 and set(y.tolist()) == set(range(5 * t, 5 * t + 5))
        vx, vy = task.val()
        tx, ty = task.test()
        assert len(vy) == 5 * 2 and len(ty) == 5 * 4 and vx.dtype == torch.get_default_dtype()
    cut = split_image_stream("fake", data, 2, 0, 7, CIFAR_MEAN, CIFAR_STD, None)
    assert cut[0].n_train == 7 and len(set(cut[0].train()[1].tolist())) > 1   # a shuffled cut, not one class


def test_the_first_validation_rows_of_a_task_hold_several_of_its_classes_and_training_draws_stay_put():
    """Anytime evaluation and the analyses read a task's first N validation rows: not one class's."""
    data = fake_images(per_class=100)                               # 10 validation rows per class
    stream = split_image_stream("fake", data, 2, 0, 30, CIFAR_MEAN, CIFAR_STD, None)
    for t, task in enumerate(stream):
        _, first = task.first("val", 20)
        assert len(set(first.tolist())) >= 4, first                 # class by class, 20 rows would be 2 classes
        assert sorted(task.val()[1].tolist()) == sorted(list(range(5 * t, 5 * t + 5)) * 10)
    # the training subsets (samples_per_task=30) are the ones the stream drew before the shuffle was added
    assert stream[0].train()[1].tolist()[:10] == [4, 3, 4, 1, 2, 2, 3, 1, 3, 0]
    assert stream[1].train()[1].tolist()[:10] == [9, 5, 7, 6, 6, 6, 9, 6, 8, 9]

def test_the_task_masked_loss_equals_the_authors_five_logit_slice():
    model = build_model("mlp", (12,), 10)
    method = build_method("er", model, {}, 0)
    heads = torch.zeros(2, 10, dtype=torch.bool)
    heads[0, :5] = heads[1, 5:] = True
    method.use_task_heads(heads)
    logits, tasks = torch.randn(6, 10), torch.tensor([0, 1, 1, 0, 1, 0])
    y = tasks * 5 + torch.tensor([0, 4, 2, 3, 1, 0])
    sliced = torch.stack([F.cross_entropy(logits[i:i + 1, 5 * t:5 * t + 5], y[i:i + 1] - 5 * t)
                          for i, t in enumerate(tasks.tolist())]).mean()
    assert torch.allclose(method.loss(logits, y, tasks), sliced)
    x = torch.randn(4, 12)
    assert (method.predict(x, 1).argmax(1) >= 5).all() and (method.predict(x, 0).argmax(1) < 5).all()


@pytest.mark.parametrize("shape, outputs, count", [((3, 32, 32), 100, 1_419_940), ((3, 64, 64), 200, 2_873_640)])
def test_the_conv_nets_have_the_papers_parameter_counts(shape, outputs, count):
    assert sum(p.numel() for p in build_model("pc-cnn", shape, outputs).parameters()) == count


def test_a_second_order_la_maml_run_on_a_small_image_stream_fills_both_matrices():
    """Runs the paper's CIFAR La-MAML (second order, raw-alpha inner steps, clamp) through the engine;
    whether it learns is checked on real images (README: the Tiny ImageNet smoke run)."""
    torch.manual_seed(0)
    stream = split_image_stream("fake", fake_images(side=8), 2, 0, None, CIFAR_MEAN, CIFAR_STD, 63 / 255)
    config = resolve_config("cifar100", "la-maml", {"glances": 1}, tasks=2)
    assert config.params["second_order"] and config.model == "pc-cnn"
    model = build_model("pc-cnn", stream.input_shape, stream.n_outputs)
    method = build_method("la-maml", model, config.method_params(), 0)
    method.use_task_heads(stream.head_mask())
    assert method.backend.name == "autograd"                    # conv net, second order: the reference path
    before = [p.detach().clone() for p in model.parameters()]
    result = train(method, stream, epochs=1, batch_size=10, glances=1,
                   generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    assert result.test_matrix is not None and np.isfinite(result.acc_matrix[1]).all()
    assert np.isfinite(result.test_matrix[1]).all() and ((0 <= result.acc_matrix[1]) & (result.acc_matrix[1] <= 100)).all()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert len(method.memory.x) == 200 and method.memory.x.dtype == torch.get_default_dtype()   # augmented floats


def test_settings_select_the_papers_presets_and_refuse_the_ones_it_never_ran():
    single = resolve_config("tinyimagenet", "la-maml", setting="single")
    multi = resolve_config("tinyimagenet", "la-maml", setting="multi")
    assert (single.glances, single.epochs, multi.glances, multi.epochs) == (2, 1, 1, 10)
    assert single.params["opt_lr"] == 0.4 and single.params["inner_steps"] == 5
    # A setting the paper never ran a method in: its other setting's values under this protocol, named.
    mer_multi, mer_single = resolve_config("cifar100", "mer", setting="multi"), resolve_config("cifar100", "mer")
    assert (mer_multi.epochs, mer_multi.params) == (10, mer_single.params)
    assert "the paper ran mer on cifar100 single-pass only" in preset_note("cifar100", "mer", "multi")
    iid_single = resolve_config("tinyimagenet", "iid", setting="single")
    assert (iid_single.epochs, iid_single.batch_size) == (1, 32)
    assert "multi-pass only" in preset_note("tinyimagenet", "iid", "single")
    assert preset_note("tinyimagenet", "iid", "multi") is None and preset_note("mnist-rotations", "mer", "multi") is None
    assert resolve_config("mnist-rotations", "la-maml", setting="multi").epochs == 10


@pytest.mark.parametrize("method", ["er", "gem", "a-gem", "mer", "la-er", "c-maml", "sync-la-maml", "la-maml", "iid",
                                    "icarl", "meta-bgd"])
def test_every_table2_method_runs_with_task_heads_on_images(method):
    """Presets of the paper (cut to 2 small tasks): each method trains and evaluates without error."""
    torch.manual_seed(0)
    stream = split_image_stream("fake", fake_images(side=8), 2, 0, 20, CIFAR_MEAN, CIFAR_STD, 63 / 255)
    setting = "multi" if method == "iid" else "single"
    cheap = {"glances": 1, "epochs": 1, "model": "mlp", **({"batches_per_example": 2} if method == "mer" else {}),
             **({"iterations": 5} if method == "iid" else {})}
    config = resolve_config("cifar100", method, cheap, tasks=2, setting=setting)
    model = build_model(config.model, stream.input_shape, stream.n_outputs)
    learner = build_method(method, model, config.method_params(), 0)
    learner.use_task_heads(stream.head_mask())
    result = train(learner, stream, epochs=1, batch_size=config.batch_size, glances=1,
                   generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), eval_batch_size=1000)
    assert np.isfinite(result.acc_matrix[-1]).all() and result.test_matrix is not None


def test_the_appendix_hyperparameters_are_one_option_away_and_the_scripts_stay_the_default():
    scripts = resolve_config("cifar100", "la-maml")
    appendix = resolve_config("cifar100", "la-maml", hparams="appendix")
    assert scripts.hparams == "scripts" and (scripts.params["opt_lr"], scripts.params["grad_clip_norm"]) == (0.25, 1.0)
    assert (appendix.params["opt_lr"], appendix.params["grad_clip_norm"], appendix.params["inner_clamp"]) == (0.3, 2.0, 2.0)
    assert appendix.params["inner_steps"] == scripts.params["inner_steps"] == 5          # the scripts fill the gaps
    er = resolve_config("tinyimagenet", "er", {"hparams": "appendix"})
    assert (er.params["lr"], er.glances) == (0.1, 10)                                  # scripts: 0.01, 2
    mnist = resolve_config("mnist-rotations", "la-maml", hparams="appendix")
    assert (mnist.params["alpha_init"], mnist.params["opt_lr"]) == (0.3, 0.15)         # Table 6's swap
    assert resolve_config("mnist-many-permutations", "la-maml", hparams="appendix").params == \
        resolve_config("mnist-many-permutations", "la-maml").params
    with pytest.raises(UserError, match="--hparams paper: choose scripts"):
        resolve_config("cifar100", "la-maml", hparams="paper")


def test_one_registry_holds_every_benchmark_and_the_protocols_the_paper_ran_it_under():
    from lamaml.data import BENCHMARKS
    from lamaml.data.vision import cifar100_stream, tinyimagenet_stream
    assert list(BENCHMARKS) == ["mnist-rotations", "mnist-permutations", "mnist-many-permutations", "split-mnist",
                                "cifar100", "tinyimagenet"]
    assert (BENCHMARKS["cifar100"].build, BENCHMARKS["tinyimagenet"].build) == (cifar100_stream, tinyimagenet_stream)
    assert {name for name, info in BENCHMARKS.items() if info.settings == ("single", "multi")} == \
        {"cifar100", "tinyimagenet"}
    assert all(info.settings == ("single",) for name, info in BENCHMARKS.items() if name.startswith("mnist"))
