"""IID: the joint-training oracle. Sees the samples of all tasks shuffled together, so it cannot
forget; its retained accuracy is an upper bound for the network (the authors' model/iid2.py).

The engine trains it once on the union of every task's training set (``joint = True``), then
evaluates every task, drawing each epoch's batches from ``joint_batches``. Two protocols:

- the authors' (``iid2`` with ``multi_task_loader.py``'s ``MultiTaskSampler``; the vision presets):
  an epoch is ``iterations`` batches (their ``--iterations``, default 5000), each made of
  ``tasks_per_batch`` distinct random tasks (their ``--classes_per_it``, 4) with
  ``batch_size / tasks_per_batch`` distinct random samples of each, shuffled;
- plain epochs (``iterations`` and ``tasks_per_batch`` null, the class default for a user's own
  stream): one pass over the union in random order per epoch.

Difference from the authors' code: their Tiny ImageNet path had an empty validation split, which
does not arise here.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from pydantic import Field

from .base import SGDMethod, SGDParams, register


class IIDParams(SGDParams):
    lr: float = Field(0.03, gt=0, allow_inf_nan=False, description="SGD learning rate")
    iterations: int | None = Field(None, ge=1, description="batches per epoch (the authors' --iterations: "
                                   "5000, the vision presets); null: one pass over the union of the tasks")
    tasks_per_batch: int | None = Field(None, ge=1, description="distinct tasks in each batch, batch_size / "
                                        "tasks_per_batch samples of each (the authors' --classes_per_it: 4, the vision "
                                        "presets); "
                                        "null: batches drawn uniformly from the union")


@register
class IID(SGDMethod):
    name = "iid"
    summary = "IID: joint training on all tasks shuffled (upper bound, not continual)"
    Params = IIDParams
    joint = True

    def joint_batch_count(self, n: int, batch_size: int) -> int:
        """How many batches ``joint_batches`` yields for ``n`` samples (a run's projected time counts them)."""
        return self.params.iterations or math.ceil(n / batch_size)

    def joint_batches(self, tasks: torch.Tensor, batch_size: int,
                      generator: torch.Generator) -> Iterator[torch.Tensor]:
        """One epoch's batches, as row indices into the union (``tasks``: each row's task id, on the CPU)."""
        p = self.params
        n_batches = self.joint_batch_count(len(tasks), batch_size)
        if p.tasks_per_batch is None:      # slices of a random order, redrawn after each full pass
            per_pass = math.ceil(len(tasks) / batch_size)
            for b in range(n_batches):
                if b % per_pass == 0:
                    order = torch.randperm(len(tasks), generator=generator)
                yield order[(b % per_pass) * batch_size:(b % per_pass + 1) * batch_size]
            return
        rows_of_task = [torch.nonzero(tasks == t).flatten() for t in torch.unique(tasks)]
        per_task = batch_size // p.tasks_per_batch
        n_tasks = min(p.tasks_per_batch, len(rows_of_task))
        for _ in range(n_batches):
            chosen = torch.randperm(len(rows_of_task), generator=generator)[:n_tasks].tolist()
            batch = torch.cat([rows_of_task[t][torch.randperm(len(rows_of_task[t]), generator=generator)[:per_task]]
                               for t in chosen])
            yield batch[torch.randperm(len(batch), generator=generator)]

    def observe(self, x, y, task, *, first_sight):
        loss = self.loss(self.model(x), y, task)          # task: one id per sample here
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()
