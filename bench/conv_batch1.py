"""One image's forward and backward through each pc-cnn conv (batch size 1, as MER's per-sample steps),
in the default and the channels-last layout, against its floor at a given rate.

    python bench/conv_batch1.py [--rate 100]        # GFLOP/s of the floor (bench_vision.py --floor prints it)
"""
from __future__ import annotations

import argparse
import time

import torch

# (input channels, input side) of each conv: CIFAR-100's three, then Tiny ImageNet's first two
CONVS = [(3, 32), (160, 16), (160, 8), (3, 64), (160, 32)]


def best_ms(work, repeats: int = 30) -> float:
    work()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="GFLOP/s of the floor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| input (channels, side) | layout | forward + backward ms | floor ms |\n|---|---|---|---|")
    for channels, side in CONVS:
        weight = torch.randn(160, channels, 3, 3, requires_grad=True)
        macs = 160 * channels * 9 * (side // 2) ** 2
        passes = 2 if channels == 3 else 3      # the first conv forms no input gradient
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(1, channels, side, side, requires_grad=channels > 3).contiguous(memory_format=layout)
            step = lambda: torch.nn.functional.conv2d(x, weight, stride=2, padding=1).sum().backward()  # noqa: E731
            name = "channels-last" if layout is torch.channels_last else "default"
            print(f"| ({channels}, {side}) | {name} | {best_ms(step):.3f} | {passes * 2 * macs / args.rate / 1e6:.3f} |")


if __name__ == "__main__":
    main()
