"""GEM: gradient episodic memory (Lopez-Paz & Ranzato 2017), as in the GEM and MER code.

Each task keeps its last ``n_memories`` samples. On every step the gradient on each past task's
memory is computed; if the incoming batch's gradient conflicts with any of them (negative dot
product), it is replaced by its projection onto the cone where none conflicts (``qp.py``),
with ``memory_strength`` as the dual margin. Then one SGD step.

Differences from the authors' code (their model/gem.py): the QP is solved through its dual as
NNLS (scipy's nnls, not quadprog; the same projection to ~1e-14 in float64, bench/compare_mer.py);
each task's memory fills from its first slot (their ring counter runs on across tasks); a task with
fewer samples than slots uses only those it has (theirs reads uninitialised slots).
"""
import torch
from pydantic import Field
from torch.func import functional_call, grad, vmap

from .base import SGDMethod, SGDParams, register
from .episodic import EpisodicMemory
from .qp import project_to_cone


class GEMParams(SGDParams):
    n_memories: int = Field(10, ge=1, description="samples kept per task")
    memory_strength: float = Field(0.0, ge=0, allow_inf_nan=False, description="margin of the dual QP")
    qp_eps: float = Field(0.0, ge=0, allow_inf_nan=False,
                          description="ridge added to G G^T: the La-MAML repository's gem.py adds 1e-3 "
                                      "(project2cone2's default); the MER repository's copy, which made Table 1, "
                                      "adds none")


def flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def unflat(vector: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [part.view_as(t) for part, t in zip(vector.split([t.numel() for t in like]), like)]


@register
class GEM(SGDMethod):
    supports_batchnorm = False      # per-task gradients under vmap
    name = "gem"
    summary = "GEM: project the gradient so no past task's memory loss increases"
    Params = GEMParams
    state_attributes = ("memory",)

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.memory = EpisodicMemory(params.n_memories)

    def past_gradients(self, task: int) -> torch.Tensor | None:
        """One row per past task: the (clipped) gradient of the loss on its memory."""
        past = [t for t in self.memory.tasks if t != task]
        if not past:
            return None
        if len({self.memory.filled[t] for t in past}) == 1:
            rows = self._batched_task_gradients(past)        # all memories full: one vmapped call
        else:
            rows = torch.stack([flat(self.gradients(self.loss(self.model(x), y, t)))
                                for t in past for x, y in [self.memory.get(t)]])
        if self.params.grad_clip_norm is not None:
            norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
            rows = rows * (self.params.grad_clip_norm / (norms + 1e-6)).clamp(max=1.0)
        return rows

    def _batched_task_gradients(self, tasks: list[int]) -> torch.Tensor:
        params = {name: p.detach() for name, p in self.model.named_parameters()}

        def task_loss(params, x, y, t):
            return self.loss(functional_call(self.model, params, (x,)), y, t)
        x = torch.stack([self.memory.get(t)[0] for t in tasks])
        y = torch.stack([self.memory.get(t)[1] for t in tasks])
        ids = torch.tensor(tasks, device=y.device)
        grads = vmap(grad(task_loss), in_dims=(None, 0, 0, 0))(params, x, y, ids)
        return torch.cat([g.reshape(len(tasks), -1) for g in grads.values()], dim=1)

    def end_batch(self, x, y, task, *, first_sight):
        # Once per batch, not per glance (the authors' `if pass_itr == 0`); their push comes before the
        # step, ours after it, which is the same: a task's own memory never constrains its own steps.
        self.memory.add(x, y, task)

    def observe(self, x, y, task, *, first_sight):
        G = self.past_gradients(task)
        loss = self.loss(self.model(x), y, task)
        grads = self.gradients(loss, self.params.grad_clip_norm)
        if G is not None:
            g = flat(grads)
            if (G @ g < 0).any():
                grads = unflat(project_to_cone(g, G, self.params.memory_strength, self.params.qp_eps), grads)
        self.sgd_step(grads)
        return loss.detach()
