"""A-GEM: averaged gradient episodic memory (Chaudhry et al. 2019), as in the La-MAML code.

One reference gradient g_ref from the episodic memories; if the batch gradient g conflicts with
it (g . g_ref < 0), g is projected onto the half-space: g - (g . g_ref / g_ref . g_ref) g_ref.

``reference="task-mean"`` (default, the La-MAML code, its model/agem.py) averages the
clipped gradients of each past task's memory; ``"union-sample"`` is the A-GEM paper's: one
gradient on ``reference_batch_size`` samples drawn from the union of past memories.
Fixed bug: the authors' code never records task 0, so its memory never constrains anything.
"""
from typing import Literal

import torch
from pydantic import Field

from .base import register
from .gem import GEM, GEMParams, flat, unflat


class AGEMParams(GEMParams):
    reference: Literal["task-mean", "union-sample"] = Field("task-mean", description="see docstring")
    reference_batch_size: int = Field(256, ge=1, description="samples for the union-sample reference")


@register
class AGEM(GEM):
    name = "a-gem"
    summary = "A-GEM: project the gradient against one averaged memory gradient"
    Params = AGEMParams

    def reference_gradient(self, task: int) -> torch.Tensor | None:
        past = [t for t in self.memory.tasks if t != task]
        if not past:
            return None
        if self.params.reference == "task-mean":
            return self.past_gradients(task).mean(0)
        xs, ys, ts = zip(*[(*self.memory.get(t), torch.full_like(self.memory.get(t)[1], t)) for t in past])
        x, y, tasks = torch.cat(xs), torch.cat(ys), torch.cat(ts)
        pick = torch.randperm(len(y), generator=self.generator)[:self.params.reference_batch_size].to(y.device)
        return flat(self.gradients(self.loss(self.model(x[pick]), y[pick], tasks[pick]), self.params.grad_clip_norm))

    def observe(self, x, y, task, *, first_sight):
        reference = self.reference_gradient(task)
        loss = self.loss(self.model(x), y, task)
        grads = self.gradients(loss, self.params.grad_clip_norm)
        if reference is not None:
            g = flat(grads)
            # Project only on conflict; written without a branch so no GPU sync is needed.
            scale = torch.clamp(g @ reference, max=0.0) / (reference @ reference).clamp(min=1e-12)
            grads = unflat(g - scale * reference, grads)
        self.sgd_step(grads)
        return loss.detach()
