"""The fast path of the La-MAML family: first-order meta-gradients of an MLP in closed form.

With first-order inner gradients (not differentiated through), the fast weights after inner step i
are ``theta_{i+1} = theta_0 - sum_{j<=i} r * g_j`` with ``r = relu(alpha)`` (or ``alpha``), so the
meta-gradients of ``meta_loss = mean_{i in steps} L_meta(theta_{i+1})`` have a closed form:

    d/d theta_0 = mean_i m_{i+1}                                m_{i+1} = grad L_meta(theta_{i+1})
    d/d alpha   = -mean_i m_{i+1} * S_i * relu'(alpha)          S_i = g_0 + ... + g_i

And the weights after step i serve twice: the meta-loss of step i and the inner gradient of step
i+1 come from ONE forward/backward over [chunk_{i+1}; meta-batch] (21 rows on MNIST), split
into the two gradients only at the last products of each layer. Parameters, rates and gradient
accumulators are flat buffers (the model's parameters become views of one), so every update is one
operation over all 89,610 numbers instead of six. The autograd path in ``lookahead.py`` stays the
reference; tests hold the two to 1e-5 relative in float64 over many steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.mlp import MLP


def can_fuse(model: nn.Module) -> bool:
    """The closed form is written for our MLP (Linear layers with ReLU between, one head)."""
    return type(model) is MLP


def flatten_parameters_(model: nn.Module) -> torch.Tensor:
    """Move the model's parameters into one flat buffer; each parameter becomes a view of it."""
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


def views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


class FusedMLPMetaGradient:
    """Meta-gradients of one meta-update, written into preallocated flat buffers."""

    def __init__(self, model: MLP, flat_weights: torch.Tensor):
        self.shapes = [p for p in model.parameters()]           # W1, b1, W2, b2, ...
        self.theta0 = flat_weights
        n = flat_weights.numel()
        make = lambda: torch.zeros(n, dtype=flat_weights.dtype, device=flat_weights.device)  # noqa: E731
        self.fast, self.inner_grad, self.meta_grad = make(), make(), make()
        self.grad_sum, self.meta_sum, self.rate_sum = make(), make(), make()
        self._fast_views = views(self.fast, self.shapes)
        self._inner_views = views(self.inner_grad, self.shapes)
        self._meta_views = views(self.meta_grad, self.shapes)
        # Transposed views made once: they follow the fast weights, which change only in place.
        self._fast_T = [v.T for v in self._fast_views[0::2]]
        self._plans: dict = {}

    def _plan(self, batch: int, n_meta: int, chunks: tuple[tuple[int, int], ...], mean_over_steps: bool):
        """Which rows each pass reads, and each row's loss weight; fixed for a batch shape, so cached."""
        key = (batch, n_meta, chunks, mean_over_steps)
        if key not in self._plans:
            last = len(chunks) - 1
            index, weight, passes, offset = [], [], [], 0
            for i, (start, stop) in enumerate(list(chunks) + [(0, 0)]):
                want_meta = i > 0 and (mean_over_steps or i == last + 1)
                rows = list(range(start, stop)) + (list(range(batch, batch + n_meta)) if want_meta else [])
                index += rows
                weight += [1.0 / max(stop - start, 1)] * (stop - start) + ([1.0 / n_meta] * n_meta if want_meta else [])
                passes.append((offset, offset + len(rows), stop - start, i <= last, want_meta))
                offset += len(rows)
            device = self.theta0.device
            self._plans[key] = (torch.tensor(index, device=device),
                                torch.tensor(weight, dtype=self.theta0.dtype, device=device)[:, None], passes)
        return self._plans[key]

    def _pass(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, n_inner: int,
              want_inner: bool, want_meta: bool) -> torch.Tensor | None:
        """Forward/backward at the fast weights over [inner rows; meta rows].

        ``target`` is minus the one-hot labels times each row's loss weight, so the output delta
        is one fused op. Writes the inner rows' mean-loss gradient into ``inner_grad`` and the meta
        rows' into ``meta_grad``; returns the meta rows' mean loss (a tensor: no host sync).
        """
        fast, fast_T = self._fast_views, self._fast_T
        acts = [x]
        for l in range(len(fast_T) - 1):
            acts.append(torch.relu(torch.addmm(fast[2 * l + 1], acts[-1], fast_T[l])))
        log_p = torch.log_softmax(torch.addmm(fast[-1], acts[-1], fast_T[-1]), dim=1)
        delta = torch.addcmul(target, log_p.exp(), weight)          # (softmax - onehot) * weight
        meta_loss = torch.vdot(log_p[n_inner:].reshape(-1), target[n_inner:].reshape(-1)) if want_meta else None
        inner, meta = self._inner_views, self._meta_views
        for l in range(len(fast) - 2, -1, -2):
            a = acts[l // 2]
            if want_inner:
                d = delta[:n_inner]
                torch.mm(d.T, a[:n_inner], out=inner[l])
                torch.sum(d, 0, out=inner[l + 1])
            if want_meta:
                d = delta[n_inner:]
                torch.mm(d.T, a[n_inner:], out=meta[l])
                torch.sum(d, 0, out=meta[l + 1])
            if l:
                delta = torch.ops.aten.threshold_backward(delta @ fast[l], a, 0)
        return meta_loss

    def __call__(self, rates: torch.Tensor, x: torch.Tensor, y: torch.Tensor, meta_x: torch.Tensor,
                 meta_y: torch.Tensor, chunks: list[tuple[int, int]], *, mean_over_steps: bool,
                 learn_rates: bool, rate_mask: torch.Tensor | None, inner_clamp: float | None):
        """Returns (meta-loss, weight meta-gradient, rate meta-gradient or None), flat."""
        index, weight, passes = self._plan(len(x), len(meta_y), tuple(chunks), mean_over_steps)
        rows_x = torch.cat([x.reshape(len(x), -1), meta_x.reshape(len(meta_x), -1)]).index_select(0, index)
        rows_y = torch.cat([y, meta_y]).index_select(0, index)
        target = F.one_hot(rows_y, self._fast_views[-1].shape[0]).to(weight.dtype).mul_(weight).neg_()
        self.fast.copy_(self.theta0)
        self.grad_sum.zero_()
        self.meta_sum.zero_()
        self.rate_sum.zero_()
        losses = []
        for start, stop, n_inner, want_inner, want_meta in passes:
            # at theta_i: the inner gradient of chunk i (if any) and the meta-gradient m_i (if i > 0)
            loss = self._pass(rows_x[start:stop], target[start:stop], weight[start:stop], n_inner,
                              want_inner, want_meta)
            if want_meta:
                losses.append(loss)
                self.meta_sum += self.meta_grad
                if learn_rates:   # m_i pairs with the sum of the inner gradients that led to theta_i
                    self.rate_sum.addcmul_(self.meta_grad, self.grad_sum)
            if want_inner:
                if inner_clamp is not None:
                    self.inner_grad.clamp_(-inner_clamp, inner_clamp)
                self.grad_sum += self.inner_grad
                self.fast.addcmul_(rates, self.inner_grad, value=-1.0)
        n = len(losses)
        weight_grad = self.meta_sum.div_(n)
        rate_grad = None
        if learn_rates:
            rate_grad = self.rate_sum.mul_(-1.0 / n)
            if rate_mask is not None:
                rate_grad.mul_(rate_mask)
        return torch.stack(losses).mean(), weight_grad, rate_grad
