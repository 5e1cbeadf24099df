"""One SGD step of a plain MLP on one sample, its forward and backward written out (no autograd).

MER takes one SGD step per sample, 55 a incoming example on MNIST (5 batches x 11 samples), and at
batch size 1 the step's time is dispatch, not arithmetic: autograd records a graph, allocates each
gradient and clips through a stack of norms. By hand, a step is a forward of ``addmm``s, the softmax
cross-entropy's gradient ``p - onehot(y)``, and per layer the gradient flowing down ``g W`` (taken
before W moves) and the update ``W -= lr g^T a`` as one in-place rank-one ``addr_``. The clip needs
no gradient tensor either: ``||g^T a||_F = ||g|| ||a||``. Same step as autograd's (tests: 1e-10 in
float64); ``is_plain_mlp`` (the closed-form La-MAML's test) decides where it applies. On the pc-cnn,
``ConvNetStep`` takes the fully connected head so and the convolutions through autograd.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import clip_factor


class MLPStep:
    def __init__(self, params: list[torch.Tensor], mask_logits: Callable):
        self.weights, self.biases = params[0::2], params[1::2]
        self.mask_logits = mask_logits

    def backward(self, x: torch.Tensor, y: torch.Tensor, task) -> tuple[torch.Tensor, list, list]:
        """The loss on one sample and, per layer, its input and the gradient of its pre-activation."""
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
        return loss, grads, activations

    @staticmethod
    def squares(grads: list, activations: list) -> list[torch.Tensor]:
        """Each layer's squared gradient norm, weights and bias: ||g a^T||^2 + ||g||^2 = ||g||^2 (||a||^2 + 1)."""
        return [g.square().sum() * (1.0 + a.square().sum()) for g, a in zip(grads, activations)]

    def apply(self, grads: list, activations: list, scale: float | torch.Tensor) -> None:
        """W += scale g^T a and b += scale g, rank one, in place."""
        for weight, bias, g, a in zip(self.weights, self.biases, grads, activations):
            if isinstance(scale, float):
                weight.addr_(g[0], a[0], alpha=scale)
                bias.add_(g[0], alpha=scale)
            else:
                weight.add_(torch.outer(g[0], a[0]) * scale)
                bias.add_(g[0] * scale)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, task, lr: float, clip: float | None) -> torch.Tensor:
        """One step on one sample (``x`` of one row); returns its loss before the step."""
        loss, grads, activations = self.backward(x, y, task)
        scale = -lr
        if clip is not None:
            total = torch.stack(self.squares(grads, activations)).sum().sqrt()
            scale = -lr * clip_factor(total, clip)
        self.apply(grads, activations, scale)
        return loss


class ConvNetStep:
    """One SGD step of the pc-cnn (``models.convnet.ConvNet``) on one sample: the convolutions through
    autograd, the fully connected head by hand as ``MLPStep`` takes it.

    At one image the head's weight gradients are rank one, and the first head layer holds 58 % of the
    net's numbers (2560 x 320 of 1.42 M on CIFAR-100). Autograd would write its gradient out, read it
    for the clip's norm and again for the update. By hand it is one in-place ``addr_``, and the clip's
    norm comes from two vectors. The head's gradient at its input flows into the convolutions
    through autograd. Same step as autograd's (tests: 1e-10 in float64).
    """

    def __init__(self, model, mask_logits: Callable):
        self.model = model
        self.host_scale = None      # the clip's factor read to a float? None: where it lies on the CPU
        self.stem = [p for conv in model.convs for p in (conv.weight, conv.bias)]
        self.head = MLPStep(list(model.fcs.parameters()), mask_logits)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, task, lr: float, clip: float | None) -> torch.Tensor:
        """One step on one sample (``x`` of one image); returns its loss before the step."""
        features = self.model.features(x)
        with torch.no_grad():
            loss, grads, activations = self.head.backward(features.detach(), y, task)
            down = grads[0] @ self.head.weights[0]          # dL/d(features), before the head moves
        stem_grads = list(torch.autograd.grad(features, self.stem, down))
        with torch.no_grad():
            factor = 1.0
            if clip is not None:    # the global norm over stem and head, as clip_global_norm_ takes it
                squares = [torch.linalg.vector_norm(g).square() for g in stem_grads]
                total = torch.stack(squares + self.head.squares(grads, activations)).sum().sqrt()
                factor = clip_factor(total, clip)
                host = factor.device.type == "cpu" if self.host_scale is None else self.host_scale
                if host:        # no host sync to avoid there: a float, and no multiply at 1
                    factor = float(factor)
            if not isinstance(factor, float) or factor < 1.0:
                torch._foreach_mul_(stem_grads, factor)
            torch._foreach_add_(self.stem, stem_grads, alpha=-lr)
            self.head.apply(grads, activations, -lr * factor)
        return loss
