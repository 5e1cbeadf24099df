"""One SGD step of a plain MLP on one sample, its forward and backward written out (no autograd).

MER takes one SGD step per sample, 55 a incoming example on MNIST (5 batches x 11 samples), and at
batch size 1 the step's time is dispatch, not arithmetic: autograd records a graph, allocates each
gradient and clips through a stack of norms. By hand, a step is a forward of ``addmm``s, the softmax
cross-entropy's gradient ``p - onehot(y)``, and per layer the gradient flowing down ``g W`` (taken
before W moves) and the update ``W -= lr g^T a`` as one in-place rank-one ``addr_``. The clip needs
no gradient tensor either: ``||g^T a||_F = ||g|| ||a||``. Same step as autograd's (tests: 1e-10 in
float64); ``is_plain_mlp`` (the closed-form La-MAML's test) decides where it applies.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


class MLPStep:
    def __init__(self, params: list[torch.Tensor], mask_logits: Callable):
        self.weights, self.biases = params[0::2], params[1::2]
        self.mask_logits = mask_logits

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, task, lr: float, clip: float | None) -> torch.Tensor:
        """One step on one sample (``x`` of one row); returns its loss before the step."""
        activations = [x.reshape(1, -1)]
        for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
            activations.append(torch.addmm(bias, activations[-1], weight.T).relu_())
        logits = torch.addmm(self.biases[-1], activations[-1], self.weights[-1].T)
        log_p = F.log_softmax(self.mask_logits(logits, task), dim=1)
        target = y.reshape(1, 1)
        loss = -log_p.gather(1, target).reshape(())
        grad = log_p.exp_().scatter_add_(1, target, torch.full_like(log_p[:, :1], -1.0))
        grads = [grad]                              # dL/d(pre-activation) of each layer, top down
        for layer in range(len(self.weights) - 1, 0, -1):
            grad = (grad @ self.weights[layer]).mul_(activations[layer] > 0)
            grads.append(grad)
        grads.reverse()
        scale = -lr
        if clip is not None:
            squares = [g.square().sum() * (1.0 + a.square().sum()) for g, a in zip(grads, activations)]
            total = torch.stack(squares).sum().sqrt()
            scale = -lr * (clip / (total + 1e-6)).clamp(max=1.0)
        for weight, bias, g, a in zip(self.weights, self.biases, grads, activations):
            if isinstance(scale, float):
                weight.addr_(g[0], a[0], alpha=scale)
                bias.add_(g[0], alpha=scale)
            else:
                weight.add_(torch.outer(g[0], a[0]) * scale)
                bias.add_(g[0] * scale)
        return loss
