"""Our La-MAML-family meta-updates against the authors' own code, on the same weights and data.

Needs a checkout of the authors' repository (montrealrobotics/La-MAML; not shipped here, it has no
licence): their ``model/lamaml.py`` (MNIST) and ``model/lamaml_cifar.py`` (CIFAR / Tiny ImageNet)
are imported from it unmodified (``ipdb`` is stubbed). Both sides start from our initial weights,
see the same batch in the same order (identity permutation) and, where memory is involved, the same
meta-batch; we then compare meta-losses, and every weight and learned rate after the update
(largest absolute difference over all entries; float32 summation order alone gives ~1e-7).

    python bench/compare_authors.py --authors-dir /path/to/La-MAML --data-dir ../shared/data

Cases: Tiny ImageNet La-MAML (the preset's flags, one glance at a batch of 10 real images, with the
authors' init and with ours), and MNIST Rotations La-MAML, C-MAML and Sync La-MAML (five glances).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from argparse import Namespace
from pathlib import Path

import torch

from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import build_method
from lamaml.models import build_model


AUTHORS_FILES = ("model/lamaml.py", "model/lamaml_cifar.py", "model/lamaml_base.py", "model/meta/learner.py",
                 "model/meta/modelfactory.py")


def import_authors(authors_dir: str):
    missing = [name for name in AUTHORS_FILES if not (Path(authors_dir) / name).is_file()]
    if missing:
        sys.exit(f"--authors-dir {authors_dir}: not a checkout of montrealrobotics/La-MAML "
                 f"(missing {', '.join(missing)})")
    sys.modules.setdefault("ipdb", types.ModuleType("ipdb"))   # imported, never used on these paths
    sys.path.insert(0, authors_dir)
    return importlib.import_module("model.lamaml"), importlib.import_module("model.lamaml_cifar")


def start_alike(theirs, ours) -> None:
    """Their network takes our initial weights; both sides take each batch in the order given."""
    with torch.no_grad():
        for theirs_w, w in zip(theirs.net.parameters(), ours.model.parameters()):
            theirs_w.copy_(w)
    ours.randperm = lambda n, device=None: torch.arange(n)


@contextlib.contextmanager
def identity_randperm():
    """The authors shuffle each glance with torch.randperm; both sides take the batch as given."""
    original = torch.randperm
    torch.randperm = lambda n, *args, **kwargs: torch.arange(n)
    try:
        yield
    finally:
        torch.randperm = original


def authors_args(config, dataset: str, arch: str) -> Namespace:
    p = config.params
    return Namespace(n_layers=2, n_hiddens=100, arch=arch, dataset=dataset, xav_init=False,
                     alpha_init=p["alpha_init"], opt_wt=p.get("opt_wt", 0.1), opt_lr=p.get("opt_lr", 0.1),
                     glances=config.glances, memories=p["memories"], replay_batch_size=p["replay_batch_size"],
                     cuda=False, cifar_batches=p["inner_steps"] or 3, second_order=p["second_order"],
                     grad_clip_norm=p["grad_clip_norm"], learn_lr=config.method != "c-maml",
                     sync_update=config.method != "la-maml", use_old_task_memory=True)


def compare(name: str, ours, theirs, meta_losses) -> None:
    def gap(a, b):
        return max((x - y).abs().max().item() for x, y in zip(a, b))
    weights = gap(list(ours.model.parameters()), list(theirs.net.parameters()))
    rates = gap([a.detach() for a in ours.alpha.values()], list(theirs.net.alpha_lr))
    print(f"| {name} | {meta_losses[0]:.6g} | {meta_losses[1]:.6g} | {weights:.1e} | {rates:.1e} |")


def tiny_case(module, data_dir, init: str) -> None:
    stream = build_benchmark("tinyimagenet", data_dir, 0, None, False).first(1)
    x, y = stream[0].train()
    x, y = stream[0].prepare(x[:10], torch.Generator().manual_seed(1)), y[:10]
    config = resolve_config("tinyimagenet", "la-maml", {"glances": 1, "init": init})
    torch.manual_seed(0)
    model = build_model("pc-cnn", stream.input_shape, stream.n_outputs, init)
    theirs = module.Net(3 * 64 * 64, 200, 40, authors_args(config, "tinyimagenet", "pc_cnn"))
    ours = build_method("la-maml", model, config.method_params(), 0)
    ours.use_task_heads(stream.head_mask())
    start_alike(theirs, ours)
    with identity_randperm():
        losses = float(ours.observe(x, y, 0, epoch=0, glance=0)), theirs.observe(x, y, 0)
    compare(f"tinyimagenet la-maml, init {init}, 1 glance", ours, theirs, losses)


def mnist_case(module, data_dir, method: str) -> None:
    stream = build_benchmark("mnist-rotations", data_dir, 0, None, False).first(1)
    x, y = stream[0].train()
    batch, replay = (x[:10].flatten(1), y[:10]), (x[10:20].flatten(1), y[10:20])
    meta_x, meta_y = torch.cat([replay[0], batch[0]]), torch.cat([replay[1], batch[1]])
    config = resolve_config("mnist-rotations", method)
    torch.manual_seed(0)
    model = build_model("mlp", (784,), 10)
    theirs = module.Net(784, 10, 20, authors_args(config, "mnist_rotations", "linear"))
    ours = build_method(method, model, config.method_params(), 0)
    start_alike(theirs, ours)
    meta_batch = (meta_x, meta_y, torch.zeros(20, dtype=torch.long))
    theirs.getBatch = lambda *args, **kwargs: meta_batch
    ours.meta_batch = lambda *args: meta_batch
    with identity_randperm():
        for glance in range(config.glances):
            ours_loss = float(ours.observe(*batch, 0, epoch=0, glance=glance))
        theirs_loss = theirs.observe(*batch, 0)
    compare(f"mnist-rotations {method}, {config.glances} glances", ours, theirs, (ours_loss, theirs_loss))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-dir", required=True, help="a checkout of montrealrobotics/La-MAML")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mnist_module, cifar_module = import_authors(args.authors_dir)
    data_dir = resolve_data_dir(args.data_dir)
    print("| case | meta-loss ours | meta-loss authors | weights: largest difference | rates: largest difference |")
    print("|---|---|---|---|---|")
    for init in ("kaiming-normal", "kaiming-normal-gain1"):
        tiny_case(cifar_module, data_dir, init)
    for method in ("la-maml", "c-maml", "sync-la-maml"):
        mnist_case(mnist_module, data_dir, method)


if __name__ == "__main__":
    main()
