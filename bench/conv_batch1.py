"""One image's forward and backward through each pc-cnn conv (batch size 1, as MER's per-sample steps),
on PyTorch's own kernels and on oneDNN, in the default and the channels-last layout, against its floor
at a given rate; first the rate of MKL's large matrix product on this CPU.

    python bench/conv_batch1.py [--rate 100] [--threads 1]   # GFLOP/s of the floor (bench_vision.py --floor prints it)
    python bench/conv_batch1.py --onednn            # where oneDNN's time goes: convolutions vs reorders

``--onednn`` runs each conv that PyTorch sends to oneDNN in a child process with ``ONEDNN_VERBOSE=1``
and adds up oneDNN's own timings of one warm forward and backward, by primitive: the convolutions
themselves, the reorders of the weights (plain <-> oneDNN's blocked layout, three per call: weights
in for the forward and for the input gradient, the weight gradient out) and those of the activations.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict

import torch

ONEDNN_BATCHES = (1, 2, 20)      # MER's steps, the La-MAML family's inner chunks, its meta-batches
MARK = "-- timed passes --"
TIMED_PASSES = 5

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


def onednn_child(batch: int, channels: int, side: int, channels_last: int = 0) -> None:
    """Warm forward and backward passes, then TIMED_PASSES more after ``MARK`` (what the parent reads).
    As in the net, the first conv forms no gradient of its input (the images)."""
    torch.set_num_threads(1)
    weight = torch.randn(160, channels, 3, 3, requires_grad=True)
    x = torch.randn(batch, channels, side, side)
    if channels_last:
        x, weight = (t.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
                     for t in (x, weight))
    x.requires_grad_(channels > 3)
    for i in range(10 + TIMED_PASSES):
        if i == 10:
            print(MARK, flush=True)
        torch.nn.functional.conv2d(x, weight, stride=2, padding=1).sum().backward()
        sys.stdout.flush()


def onednn_split(batch: int, channels: int, side: int, channels_last: bool) -> dict[str, float] | None:
    """oneDNN's own ms for one warm forward and backward (mean of TIMED_PASSES), by kind; None if PyTorch
    did not use oneDNN."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", str(batch), str(channels), str(side),
                          str(int(channels_last))], env=env,
                         capture_output=True, text=True, check=True).stdout
    return split_verbose(out, f"160x{channels}x3x3", TIMED_PASSES)


def split_verbose(out: str, weight_dims: str, passes: int) -> dict[str, float] | None:
    """The ``exec`` lines of oneDNN's verbose log after ``MARK``, their ms summed by primitive kind and
    divided by ``passes``; a reorder of a ``weight_dims`` tensor counts as a weight reorder. None: no
    oneDNN primitive ran after the mark (or no mark)."""
    if MARK not in out:
        return None
    spent: dict[str, float] = defaultdict(float)
    for line in out.split(MARK, 1)[1].splitlines():
        fields = line.split(",")
        if len(fields) < 6 or fields[2:4] != ["primitive", "exec"]:
            continue
        kind, ms = fields[5], float(fields[-1])
        if kind == "reorder":
            kind = "weight reorders" if fields[-2] == weight_dims else "activation reorders"
        spent[kind] += ms / passes
    return dict(spent) if spent else None


def onednn_table(channels_last: bool) -> None:
    print("| input (channels, side) | batch | convolutions ms | weight reorders ms | activation reorders ms |"
          " reorders' share |\n|---|---|---|---|---|---|")
    for channels, side in CONVS:
        for batch in ONEDNN_BATCHES:
            spent = onednn_split(batch, channels, side, channels_last)
            if spent is None:
                print(f"| ({channels}, {side}) | {batch} | (PyTorch's own kernel, not oneDNN) | | | |")
                continue
            conv, weights, acts = (spent.get(k, 0.0) for k in ("convolution", "weight reorders",
                                                               "activation reorders"))
            print(f"| ({channels}, {side}) | {batch} | {conv:.3f} | {weights:.3f} | {acts:.3f} | "
                  f"{(weights + acts) / (conv + weights + acts):.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="GFLOP/s of the floor")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--onednn", action="store_true", help="oneDNN's time by primitive (see above)")
    parser.add_argument("--channels-last", action="store_true", help="--onednn: activations and weights "
                        "in the channels-last layout")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return onednn_child(*args.child)
    if args.onednn:
        return onednn_table(args.channels_last)
    torch.set_num_threads(args.threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    print(f"MKL's 1024 x 1024 product, {args.threads} thread(s): {2 * 1024 ** 3 / best_ms(lambda: a @ b) / 1e6:.0f} "
          f"GFLOP/s\n")
    print("| input (channels, side) | layout | kernels | forward + backward ms | floor ms |\n|---|---|---|---|---|")
    onednn_was = torch._C._get_mkldnn_enabled()
    for channels, side in CONVS:
        weight = torch.randn(160, channels, 3, 3, requires_grad=True)
        macs = 160 * channels * 9 * (side // 2) ** 2
        passes = 2 if channels == 3 else 3      # the first conv forms no input gradient
        for layout, onednn in ((torch.contiguous_format, False), (torch.contiguous_format, True),
                               (torch.channels_last, True)):
            x = torch.randn(1, channels, side, side, requires_grad=channels > 3).contiguous(memory_format=layout)
            step = lambda: torch.nn.functional.conv2d(x, weight, stride=2, padding=1).sum().backward()  # noqa: E731
            torch._C._set_mkldnn_enabled(onednn)
            try:
                ms = best_ms(step)
            finally:
                torch._C._set_mkldnn_enabled(onednn_was)
            name = "channels-last" if layout is torch.channels_last else "default"
            kernels = "oneDNN where PyTorch takes it" if onednn else "PyTorch's own (MER's native_convs)"
            print(f"| ({channels}, {side}) | {name} | {kernels} | {ms:.3f} | {passes * 2 * macs / args.rate / 1e6:.3f} |")

if __name__ == "__main__":
    main()
