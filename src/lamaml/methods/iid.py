"""IID: the joint-training oracle. Sees the samples of all tasks shuffled together, so it cannot
forget; its retained accuracy is an upper bound for the network (la-maml-reference 3.6).

The engine trains it once on the union of every task's training set (``joint = True``), then
evaluates every task. Difference from the authors' ``iid2``: batches are drawn uniformly from
the union, not from 4 random tasks x 8 samples; their TinyImageNet path also had an empty
validation split, which does not arise here.
"""
from pydantic import Field

from .base import SGDMethod, SGDParams, register


class IIDParams(SGDParams):
    lr: float = Field(0.03, gt=0, allow_inf_nan=False, description="SGD learning rate")


@register
class IID(SGDMethod):
    name = "iid"
    summary = "IID: joint training on all tasks shuffled (upper bound, not continual)"
    Params = IIDParams
    joint = True

    def observe(self, x, y, task, *, epoch, glance):
        loss = self.loss(self.model(x), y, task)          # task: one id per sample here
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()
