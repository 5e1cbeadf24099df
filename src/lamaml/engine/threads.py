"""How many CPU threads a run trains on (``train_threads``; evaluation always uses all the process may).

``"auto"``, the default, decides by what the run computes, from measurements on this project's
2-core reference machine (BENCHMARKS.md, "Two training threads by default for the conv nets"):

- a conv net (CIFAR-100, Tiny ImageNet, or a user's model with a convolution) trains on all the
  threads the process may use, at most ``AUTO_CAP``: the Table 2 methods' updates ran 1.4-1.9x
  faster on two threads than on one (1.5x or more for all but MER in 73 of 76 measurements);
- several seeds trained as one batched computation (``lamaml run --seeds``) train on one, as each
  seed's separate run does, so that every seed's numbers equal its separate run's to the bit: MKL
  splits a product's sums differently on two threads, and the runs would drift apart by rounding.
  Where MKL is told to round the same whatever the thread count (``MKL_CBWR=AUTO,STRICT`` in the
  environment before the process starts: its strict reproducibility mode), batched seeds take the
  threads as a conv net does (five seeds' update: 6.4 instead of 7.6 ms, ``bench/profile_seeds.py``). Strict
  mode is not the default because it slows the conv nets' updates by 10-20 % (BENCHMARKS.md);
- a single MLP run (the MNIST benchmarks) trains on one: its single-sample steps are too small to
  share out, and a second thread only adds synchronisation.

"All the process may use" is ``torch.get_num_threads()``: the cores, or ``OMP_NUM_THREADS``, or
what a sweep gives each of its parallel jobs (the cores over ``--jobs``), so runs side by side in a
sweep never oversubscribe the CPU. Two runs started by hand side by side should each set
``train_threads=1`` (two threads per run collapse when the cores are shared).
"""
from __future__ import annotations

import os

import torch

from ..models.kinds import has_convolutions

# Beyond four threads the pc-cnn's small convolutions (batches of 1-20 images) were not measured; a
# larger machine may gain more, and ``--set train_threads=N`` takes any count.
AUTO_CAP = 4


def training_threads(setting: int | str | None, model: torch.nn.Module, device: torch.device,
                     seeds: int = 1) -> int | None:
    """The thread count a run trains on: ``setting`` itself when it is a number, ``"auto"`` resolved
    (module docstring); None off the CPU, where threads do not compute the run."""
    if device.type != "cpu" or setting is None:
        return None
    if setting != "auto":
        return int(setting)
    return auto_threads(has_convolutions(model), seeds, torch.get_num_threads())


def auto_threads(convolutions: bool, seeds: int, available: int) -> int:
    """What ``"auto"`` resolves to for a model with or without convolutions, ``seeds`` trained batched,
    on ``available`` threads (module docstring)."""
    if convolutions or (seeds > 1 and mkl_strict()):
        return max(1, min(available, AUTO_CAP))
    return 1


def mkl_strict() -> bool:
    """Whether MKL was asked to round its products the same whatever the thread count."""
    return "STRICT" in os.environ.get("MKL_CBWR", "").upper()
