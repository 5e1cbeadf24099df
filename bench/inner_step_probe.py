"""One La-MAML inner step on real Tiny ImageNet images at the pc-cnn's initial weights.

Prints, for each weight init and initial rate alpha, how far one inner step (theta - alpha * clamp(g, +-clamp), raw
alpha as the authors' CIFAR/Tiny code, on 2 samples as cifar_batches 5 of a batch of 10) moves each
layer relative to its norm, and the task-masked loss on the batch before and after the step. It is the
evidence behind Tiny ImageNet's init deviation (docs/vision.md, "Tiny ImageNet and the authors' init"): with
the authors' kaiming-normal (gain sqrt 2) one step at alpha 0.1 multiplies the loss by ~1000, with
gain 1 it does not.

    python bench/inner_step_probe.py --alphas 0.1,0.01 --inits kaiming-normal,kaiming-normal-gain1
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import derived_seeds
from lamaml.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--alphas", default="0.1,0.01")
    parser.add_argument("--clamp", type=float, default=1.0, help="element-wise inner clamp (the preset's 1.0)")
    parser.add_argument("--inits", default="kaiming-normal,kaiming-normal-gain1",
                        help="weight inits to compare (the authors' code: kaiming-normal; the preset: gain1)")
    args = parser.parse_args()
    stream = build_benchmark("tinyimagenet", resolve_data_dir(args.data_dir), 0, 200, False).first(1)
    task = stream[0]
    x, y = task.train()
    xb, yb = task.prepare(x[:10], torch.Generator().manual_seed(1)), y[:10]
    mask = stream.head_mask()[0]
    for init, alpha in ((i, float(a)) for i in args.inits.split(",") for a in args.alphas.split(",")):
        torch.manual_seed(derived_seeds(0)["model"])
        model = build_model("pc-cnn", stream.input_shape, stream.n_outputs, init)
        loss = lambda rows: F.cross_entropy(model(xb[rows]).masked_fill(~mask, float("-inf")), yb[rows])  # noqa: E731
        before = loss(slice(None)).item()
        grads = torch.autograd.grad(loss(slice(0, 2)), list(model.parameters()))
        moved = {}
        with torch.no_grad():
            for (name, p), g in zip(model.named_parameters(), grads):
                step = alpha * g.clamp(-args.clamp, args.clamp)
                if name.endswith("weight"):
                    moved[name] = (step.norm() / p.norm()).item()
                p.sub_(step)
            after = loss(slice(None)).item()
        layers = ", ".join(f"{n.removesuffix('.weight')} {100 * v:.0f}%" for n, v in moved.items())
        print(f"init {init}, alpha {alpha}: loss on the batch {before:.2f} -> {after:.2f} after one inner step; "
              f"each layer moved by (step norm / weight norm): {layers}")


if __name__ == "__main__":
    main()
