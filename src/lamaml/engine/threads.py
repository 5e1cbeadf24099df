"""How many CPU threads a run trains on (``train_threads``; evaluation always uses all the process may).

``"auto"``, the default, decides by what the run computes, from measurements on this project's
2-core reference machine (BENCHMARKS.md, "Two training threads by default for the conv nets"):

- a conv net (CIFAR-100, Tiny ImageNet, or a user's model with a convolution) trains on all the
  threads the process may use, at most ``AUTO_CAP``: the Table 2 methods' updates ran 1.4-1.9x
  faster on two threads than on one (1.5x or more for all but MER in 73 of 76 measurements);
- several seeds trained as one batched computation (``lamaml run --seeds``) likewise: their
  products are S times larger (9 % faster on two threads);
- a single MLP run (the MNIST benchmarks) trains on one: its single-sample steps are too small to
  share out, and a second thread only adds synchronisation.

"All the process may use" is ``torch.get_num_threads()``: the cores, or ``OMP_NUM_THREADS``, or
what a sweep gives each of its parallel jobs (the cores over ``--jobs``), so runs side by side in a
sweep never oversubscribe the CPU. Two runs started by hand side by side should each set
``train_threads=1`` (two threads per run collapse when the cores are shared).
"""
from __future__ import annotations

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
    if has_convolutions(model) or seeds > 1:
        return max(1, min(torch.get_num_threads(), AUTO_CAP))
    return 1
