"""The first meta-loss of each look-ahead method on real Tiny ImageNet images, under each weight init.

The evidence behind which Tiny ImageNet presets take ``init: kaiming-normal-gain1`` (vision.yaml's
header): for each method, init and seed, one update with the method's preset (single-pass unless
``--setting multi``) on the first 10 training images of task 0, task-aware heads, and the meta-loss
it reports. A look-ahead that blows up with an init shows a meta-loss far above ln 5 = 1.6.

    python bench/init_probe.py
"""
from __future__ import annotations

import argparse

import torch

from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import build_method
from lamaml.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--methods", default="la-maml,sync-la-maml,c-maml,la-er")
    parser.add_argument("--inits", default="kaiming-normal,kaiming-normal-gain1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--setting", default="single", choices=["single", "multi"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    stream = build_benchmark("tinyimagenet", resolve_data_dir(args.data_dir), 0, None, False).first(1)
    x, y = stream[0].train()
    x, y = stream[0].prepare(x[:10], torch.Generator().manual_seed(1)), y[:10]
    print("| method | init | first meta-loss per seed |")
    print("|---|---|---|")
    for method in args.methods.split(","):
        for init in args.inits.split(","):
            losses = []
            for seed in map(int, args.seeds.split(",")):
                config = resolve_config("tinyimagenet", method, {"glances": 1, "init": init}, setting=args.setting)
                torch.manual_seed(seed)
                model = build_model("pc-cnn", stream.input_shape, stream.n_outputs, init)
                learner = build_method(method, model, config.method_params(), seed)
                learner.use_task_heads(stream.head_mask())
                losses.append(float(learner.observe(x, y, 0, first_sight=True)))
            print(f"| {method} ({args.setting}) | {init} | {', '.join(f'{v:.3g}' for v in losses)} |", flush=True)


if __name__ == "__main__":
    main()
