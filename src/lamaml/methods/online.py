"""Online: plain SGD on the stream, one step per incoming batch and glance.

The lower bound of the MNIST table (Lopez-Paz & Ranzato 2017, "single"; MER repository
``model/online.py``). No memory, no regularisation.
"""
from .base import SGDMethod, register


@register
class Online(SGDMethod):
    name = "online"
    summary = "Online: plain SGD on the stream (lower bound)"

    def observe(self, x, y, task, *, first_sight):
        loss = self.loss(self.model(x), y, task)
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()
