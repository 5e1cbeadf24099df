"""ER: experience replay with a reservoir memory (Chaudhry et al. 2019; Riemer et al. 2019, Alg. 4).

Each glance takes one SGD step on the incoming batch plus ``replay_batch_size`` samples drawn
from memory (the authors' model/eralg4.py, Net.ER). After the last glance at a batch, the batch enters the
reservoir, as in ``eralg4.py`` (its push follows the glance loop), so no glance replays the batch
it is looking at.

Differences from the authors' ``eralg4.py``: it slices logits by task even on single-head MNIST,
which leaves an empty slice for every task after the first, so it cannot run there; we apply
the benchmark's own head. ``push_every_epoch`` keeps their re-pushing of samples on every epoch.
"""
import torch
from pydantic import Field

from .base import SGDMethod, SGDParams, register
from .replay import ReservoirMemory


class ERParams(SGDParams):
    memories: int = Field(200, ge=0, description="replay memory slots (reservoir)")
    replay_batch_size: int = Field(1, ge=0, description="replay samples added to each batch")
    grad_clip_norm: float | None = Field(2.0, gt=0, allow_inf_nan=False, description="global L2 clip")
    push_every_epoch: bool = Field(True, description="re-offer samples to memory on every epoch "
                                                     "(authors' code) or only on the first")


@register
class ER(SGDMethod):
    name = "er"
    summary = "ER: SGD on the incoming batch plus reservoir replay"
    Params = ERParams
    state_attributes = ("memory",)

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.memory = ReservoirMemory(params.memories, generator)

    def observe(self, x, y, task, *, first_sight):
        tasks = torch.full_like(y, task)
        replay = self.memory.sample(self.params.replay_batch_size)
        if replay is not None:
            x, y, tasks = (torch.cat([r, c]) for r, c in zip(replay, (x, y, tasks)))
        loss = self.loss(self.model(x), y, tasks)
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()

    def end_batch(self, x, y, task, *, first_sight):
        if first_sight or self.params.push_every_epoch:
            self.memory.add(x, y, task)
