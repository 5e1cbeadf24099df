"""MER: meta-experience replay (Riemer et al. 2019, Algorithm 1), as in the MER code.

For each incoming example: ``batches_per_example`` times, draw ``replay_batch_size`` memory
samples, take one SGD step per sample (the incoming example first), then a within-batch Reptile
step theta <- theta_wb + beta (theta - theta_wb); after all batches an across-batch Reptile step
with gamma; finally the example enters the reservoir (the authors' model/meralg1.py).

Parameters move in place through foreach ops instead of the authors' state_dict deep copies.
One deliberate difference, an option away: the MER code picks the reservoir slot with
``random.randint(0, age)`` (both ends included), which keeps the n-th sample with probability
M/(n+1) instead of M/n, a slight bias against recent samples; we default to the uniform rule, and
``reservoir_off_by_one: true`` restores theirs. Otherwise equal to their ``meralg1.py`` in float64
(bench/compare_mer.py). On a plain MLP (the MNIST net) each per-sample step is written out by hand
(mlp_step.py, ``fast_path``), the same step without autograd's per-step dispatch; on the pc-cnn, its
fully connected head is (``ConvNetStep``: rank-one updates, no gradient written out). On a conv net on
an Intel CPU the single-image convolutions run on PyTorch's own kernels, not oneDNN (``native_convs``).
"""
from contextlib import contextmanager, nullcontext
from typing import Literal

import torch
from pydantic import Field

from ..hardware import intel_cpu
from ..models.convnet import ConvNet
from ..models.kinds import has_convolutions
from .base import COMPUTATION_ONLY, SGDMethod, SGDParams, register
from .lookahead.closed_form import is_plain_mlp
from .mlp_step import ConvNetStep, MLPStep
from .replay import ReservoirMemory


class MERParams(SGDParams):
    lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="SGD rate of the per-sample steps")
    beta: float = Field(0.01, ge=0, le=1, description="within-batch Reptile rate")
    gamma: float = Field(1.0, ge=0, le=1, description="across-batch Reptile rate")
    memories: int = Field(200, ge=0, description="replay memory slots (reservoir)")
    replay_batch_size: int = Field(10, ge=0, description="memory samples per batch")
    batches_per_example: int = Field(5, ge=1, description="Reptile batches per incoming example")
    reservoir_off_by_one: bool = Field(False, description="reproduce the authors' reservoir rule")
    fast_path: bool = Field(True, description="on a plain MLP, each per-sample step by hand (mlp_step.py), "
                            "not through autograd; on the pc-cnn, its fully connected head by hand (rank-one "
                            "updates, ConvNetStep)", json_schema_extra=COMPUTATION_ONLY)
    native_convs: bool | Literal["auto"] = Field(
        "auto", description="on the CPU, the per-sample steps' convolutions on PyTorch's own kernels instead of "
        "oneDNN, which converts every weight's layout on each call; auto: on an Intel CPU, where those kernels "
        "multiply on MKL's AVX-512 code (6-13 % faster per example than oneDNN there), and not elsewhere: on an "
        "AMD CPU MKL runs its AVX2 code and oneDNN is faster (BENCHMARKS.md); the same maths, summed in another "
        "order", json_schema_extra=COMPUTATION_ONLY)


@contextmanager
def onednn_off():
    """PyTorch's own CPU convolutions for a while (not torch.backends.mkldnn.flags, which also sets
    oneDNN's TF32 flag and warns about it on every call)."""
    before = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(before)


@register
class MER(SGDMethod):
    supports_batchnorm = False      # single-sample SGD steps
    name = "mer"
    summary = "MER: per-sample SGD on replay batches with Reptile meta-updates"
    Params = MERParams
    state_attributes = ("memory",)

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.memory = ReservoirMemory(params.memories, generator, params.reservoir_off_by_one)
        self.parameters = list(model.parameters())
        self.by_hand = None
        if params.fast_path and is_plain_mlp(model):
            self.by_hand = MLPStep(self.parameters, self.mask_logits)
        elif params.fast_path and type(model) is ConvNet:
            self.by_hand = ConvNetStep(model, self.mask_logits)
        native = intel_cpu() if params.native_convs == "auto" else params.native_convs
        self.native_convs = native and has_convolutions(model)

    def step(self, x, y, task) -> torch.Tensor:
        """One SGD step on one sample; its loss."""
        if self.by_hand is not None:
            return self.by_hand(x, y, task, self.params.lr, self.params.grad_clip_norm)
        loss = self.loss(self.model(x), y, task)
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()

    def snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.parameters]

    def reptile(self, start: list[torch.Tensor], rate: float) -> None:
        """theta <- start + rate * (theta - start)."""
        if rate != 1.0:
            with torch.no_grad():
                torch._foreach_lerp_(self.parameters, start, 1.0 - rate)

    first_glance = True     # at the incoming batch, in this epoch: its samples enter memory as they go

    def observe(self, x, y, task, *, first_sight):
        native = self.native_convs and x.device.type == "cpu"
        with onednn_off() if native else nullcontext():
            return self._observe(x, y, task)

    def _observe(self, x, y, task):
        loss = None
        for i in range(len(x)):
            xi, yi = x[i:i + 1], y[i:i + 1]
            before = self.snapshot()
            for _ in range(self.params.batches_per_example):
                within = self.snapshot()
                batch = [(xi, yi, task)]
                replay = self.memory.sample(self.params.replay_batch_size)
                if replay is not None:
                    batch += [(replay[0][j:j + 1], replay[1][j:j + 1], replay[2][j:j + 1]) for j in range(len(replay[1]))]
                for bx, by, bt in batch:
                    loss = self.step(bx, by, bt)
                self.reptile(within, self.params.beta)
            self.reptile(before, self.params.gamma)
            if self.first_glance:
                self.memory.add(xi, yi, task)
        self.first_glance = False
        return loss

    def end_batch(self, x, y, task, *, first_sight):
        self.first_glance = True
