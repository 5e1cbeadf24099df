"""The meta-gradient of an MLP in closed form: first order, one shared softmax, no autograd.

With first-order inner gradients (not differentiated through), the fast weights after inner step i
are ``theta_{i+1} = theta_0 - sum_{j<=i} r * g_j`` with ``r = relu(alpha)`` (or ``alpha``), so the
meta-gradients of ``meta_loss = mean_{i in steps} L_meta(theta_{i+1})`` have a closed form:

    d/d theta_0 = mean_i m_{i+1}                                m_{i+1} = grad L_meta(theta_{i+1})
    d/d alpha   = -mean_i m_{i+1} * S_i * relu'(alpha)          S_i = g_0 + ... + g_i

And the weights after step i serve twice: the meta-loss of step i and the inner gradient of step
i+1 come from ONE forward/backward over [chunk_{i+1}; meta-batch] (21 rows on MNIST), split
into the two gradients only at the last products of each layer. Every buffer is flat and
preallocated, so a meta-update allocates nothing. Any model that computes Linear, ReLU, ...,
Linear over its parameters in order qualifies (``supports`` checks it by running the model once);
the autograd backend stays the reference, and tests hold the two to 1e-5 relative in float64.
"""
from __future__ import annotations

import torch
from torch import nn

from .state import LookaheadState, split_views
from .update import MetaGradient, Plan


def mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Linear, ReLU, ..., Linear over ``params`` = [W1, b1, W2, b2, ...]: what the closed form assumes."""
    x = x.reshape(len(x), -1)
    for layer in range(0, len(params) - 2, 2):
        x = torch.relu(x @ params[layer].T + params[layer + 1])
    return x @ params[-2].T + params[-1]


# The modules a plain MLP is made of (containers aside); any other (an activation like ReLU6 that agrees
# with ReLU on small inputs, dropout, a norm) rules the closed form out.
MLP_PARTS = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity)


@torch.no_grad()
def is_plain_mlp(model: nn.Module) -> bool:
    """Whether ``model`` computes ``mlp_forward`` over its parameters, whatever its class: made of
    Linear and ReLU modules only, matrices and bias vectors alternating, widths chaining, and the same
    outputs on probe batches of small and large inputs (a forward that clamps is not ReLU)."""
    if any(not isinstance(m, MLP_PARTS) for m in model.modules() if m is not model and not list(m.children())):
        return False
    params = list(model.parameters())
    if not params or len(params) % 2 or any(p.dim() != 2 for p in params[0::2]) \
            or any(b.dim() != 1 or b.shape[0] != w.shape[0] for w, b in zip(params[0::2], params[1::2])) \
            or any(a.shape[0] != b.shape[1] for a, b in zip(params[0:-2:2], params[2::2])):
        return False
    first = params[0]
    probe = torch.randn(7, first.shape[1], generator=torch.Generator().manual_seed(0), dtype=first.dtype)
    for scale in (1.0, 100.0):
        x = (probe * scale).to(first.device)
        try:
            out = model(x)
        except Exception:   # a model that cannot read flat inputs is not this MLP
            return False
        expected = mlp_forward(params, x)
        if out.shape != expected.shape or not torch.allclose(out, expected, rtol=1e-4, atol=1e-5 * scale):
            return False
    return True


class _Pass:
    """One forward/backward of a layout: views into the layout's buffers, made once and reused."""

    def __init__(self, x, target, weight, n_inner: int, want_inner: bool, want_meta: bool, widths: list[int]):
        rows, dtype, device = len(x), x.dtype, x.device
        self.x, self.target, self.weight = x, target, weight
        self.n_inner, self.want_inner, self.want_meta = n_inner, want_inner, want_meta
        buffer = lambda width: torch.empty(rows, width, dtype=dtype, device=device)  # noqa: E731
        self.acts = [x] + [buffer(w) for w in widths[1:-1]]          # inputs of each layer
        self.deltas = [buffer(w) for w in widths[1:]]                 # output gradients of each layer
        self.log_p = buffer(widths[-1])
        self.logits = self.deltas[-1]                                 # logits become the top delta in place
        split = lambda t: (t[:n_inner], t[n_inner:])  # noqa: E731
        self.acts_split = [split(a) for a in self.acts]
        self.deltas_T_split = [tuple(part.T for part in split(d)) for d in self.deltas]
        self.ones_split = split(torch.ones(rows, dtype=dtype, device=device))
        self.meta_log_p = self.log_p[n_inner:].reshape(-1)
        self.meta_target = target[n_inner:].reshape(-1)


class _Layout:
    """Which rows each pass reads, each row's loss weight, and every buffer the passes write.

    Fixed for a batch shape (incoming rows, meta rows, chunks, loss mode), so built once and cached:
    a meta-update then allocates nothing and slices nothing.
    """

    def __init__(self, batch: int, n_meta: int, chunks: tuple[tuple[int, int], ...], mean_over_steps: bool,
                 widths: list[int], dtype: torch.dtype, device: torch.device):
        last = len(chunks) - 1
        index, weight, bounds, offset = [], [], [], 0
        for i, (start, stop) in enumerate(list(chunks) + [(0, 0)]):
            want_meta = i > 0 and (mean_over_steps or i == last + 1)
            rows = list(range(start, stop)) + (list(range(batch, batch + n_meta)) if want_meta else [])
            index += rows
            weight += [1.0 / max(stop - start, 1)] * (stop - start) + ([1.0 / n_meta] * n_meta if want_meta else [])
            bounds.append((offset, offset + len(rows), stop - start, i <= last, want_meta))
            offset += len(rows)
        self.index = torch.tensor(index, device=device)
        self.neg_weight = -torch.tensor(weight, dtype=dtype, device=device)[:, None]
        self.source = torch.empty(batch + n_meta, widths[0], dtype=dtype, device=device)   # [x; meta_x]
        self.labels = torch.empty(batch + n_meta, dtype=torch.long, device=device)
        self.rows_x = torch.empty(len(index), widths[0], dtype=dtype, device=device)
        self.rows_y = torch.empty(len(index), 1, dtype=torch.long, device=device)
        self.target = torch.empty(len(index), widths[-1], dtype=dtype, device=device)
        self.weight = -self.neg_weight
        self.passes = [_Pass(self.rows_x[a:b], self.target[a:b], self.weight[a:b], n, inner, meta, widths)
                       for a, b, n, inner, meta in bounds]
        self.losses = torch.empty(sum(p.want_meta for p in self.passes), dtype=dtype, device=device)
        for p, loss in zip([p for p in self.passes if p.want_meta], self.losses):
            p.loss = loss                                  # each pass writes its meta-loss here

    def load(self, x, y, meta_x, meta_y) -> None:
        """Gather this meta-update's rows; targets are minus the one-hot labels times each row's weight."""
        batch = len(x)
        self.source[:batch].copy_(x.reshape(batch, -1))
        self.source[batch:].copy_(meta_x.reshape(len(meta_x), -1))
        self.labels[:batch].copy_(y)
        self.labels[batch:].copy_(meta_y)
        torch.index_select(self.source, 0, self.index, out=self.rows_x)
        torch.index_select(self.labels, 0, self.index, out=self.rows_y[:, 0])
        self.target.zero_().scatter_(1, self.rows_y, self.neg_weight)


class ClosedFormMLP:
    """Meta-gradients of one meta-update, written into preallocated flat buffers."""

    name = "closed-form"

    @staticmethod
    def supports(model: nn.Module, plan: Plan, *, plain_loss: bool) -> bool:
        """First order, the weights' meta-gradient wanted, plain cross-entropy over one shared head,
        and a plain MLP."""
        return not plan.second_order and plan.weight_gradient and plain_loss and is_plain_mlp(model)

    def __init__(self, state: LookaheadState):
        self.state = state
        self.shapes = list(state.parameters.values())            # W1, b1, W2, b2, ...
        self.widths = [self.shapes[0].shape[1]] + [w.shape[0] for w in self.shapes[0::2]]
        flat = state.weights
        make = lambda: torch.zeros_like(flat)  # noqa: E731
        self.fast, self.inner_grad, self.meta_grad = make(), make(), make()
        self.grad_sum, self.meta_sum, self.rate_sum = make(), make(), make()
        self.relu_rates = make()                                 # relu(alpha), then its sign
        self._fast_views = split_views(self.fast, self.shapes)
        self._inner_views = split_views(self.inner_grad, self.shapes)
        self._meta_views = split_views(self.meta_grad, self.shapes)
        # Transposed views made once: they follow the fast weights, which change only in place.
        self._fast_T = [v.T for v in self._fast_views[0::2]]
        self._layouts: dict = {}

    def _layout(self, batch: int, n_meta: int, chunks: tuple[tuple[int, int], ...], mean_over_steps: bool) -> _Layout:
        key = (batch, n_meta, chunks, mean_over_steps)
        if key not in self._layouts:
            self._layouts[key] = _Layout(batch, n_meta, chunks, mean_over_steps, self.widths, self.fast.dtype,
                                     self.fast.device)
        return self._layouts[key]

    def _pass(self, p: _Pass) -> None:
        """Forward/backward at the fast weights over [inner rows; meta rows].

        Writes the inner rows' mean-loss gradient into ``inner_grad``, the meta rows' into
        ``meta_grad`` and their mean loss into ``p.loss`` (a tensor: no host sync).
        """
        fast, fast_T = self._fast_views, self._fast_T
        for l in range(len(fast_T) - 1):
            out = p.acts[l + 1]
            torch.addmm(fast[2 * l + 1], p.acts[l], fast_T[l], out=out).relu_()
        torch.addmm(fast[-1], p.acts[-1], fast_T[-1], out=p.logits)
        torch.ops.aten._log_softmax.out(p.logits, 1, False, out=p.log_p)
        delta = p.deltas[-1]                                        # (softmax - onehot) * weight
        torch.addcmul(p.target, torch.exp(p.log_p, out=delta), p.weight, out=delta)
        if p.want_meta:
            torch.vdot(p.meta_log_p, p.meta_target, out=p.loss)
        inner, meta = self._inner_views, self._meta_views
        for layer in range(len(p.deltas) - 1, -1, -1):
            l = 2 * layer
            (a_inner, a_meta), (d_inner_T, d_meta_T) = p.acts_split[layer], p.deltas_T_split[layer]
            if p.want_inner:
                torch.mm(d_inner_T, a_inner, out=inner[l])
                torch.mv(d_inner_T, p.ones_split[0], out=inner[l + 1])
            if p.want_meta:
                torch.mm(d_meta_T, a_meta, out=meta[l])
                torch.mv(d_meta_T, p.ones_split[1], out=meta[l + 1])
            if layer:
                below = p.deltas[layer - 1]
                torch.mm(p.deltas[layer], fast[l], out=below)
                torch.ops.aten.threshold_backward.grad_input(below, p.acts[layer], 0, grad_input=below)

    def __call__(self, state: LookaheadState, batch, meta, plan: Plan) -> MetaGradient:
        """The meta-gradients of ``plan`` from the weights and rates of ``state``, flat."""
        (x, y, _), (meta_x, meta_y, _) = batch, meta
        rates = torch.clamp_min(state.rates, 0, out=self.relu_rates) if plan.relu_in_inner else state.rates
        layout = self._layout(len(x), len(meta_y), plan.chunks, plan.mean_over_steps)
        layout.load(x, y, meta_x, meta_y)
        self.fast.copy_(state.weights)
        self.grad_sum.zero_()
        self.meta_sum.zero_()
        self.rate_sum.zero_()
        for p in layout.passes:
            # at theta_i: the inner gradient of chunk i (if any) and the meta-gradient m_i (if i > 0)
            self._pass(p)
            if p.want_meta:
                self.meta_sum += self.meta_grad
                if plan.learn_rates:   # m_i pairs with the sum of the inner gradients that led to theta_i
                    self.rate_sum.addcmul_(self.meta_grad, self.grad_sum)
            if p.want_inner:
                if plan.inner_clamp is not None:
                    self.inner_grad.clamp_(-plan.inner_clamp, plan.inner_clamp)
                self.grad_sum += self.inner_grad
                self.fast.addcmul_(rates, self.inner_grad, value=-1.0)
        n = len(layout.losses)
        weight_grad = self.meta_sum.div_(n)
        rate_grad = None
        if plan.learn_rates:   # times relu'(alpha) where the inner step used relu(alpha)
            if plan.relu_in_inner:
                self.rate_sum.mul_(torch.sign(rates, out=self.relu_rates))
            rate_grad = self.rate_sum.mul_(-1.0 / n)
        fast = self.fast.clone() if plan.keep_fast_weights else None
        return MetaGradient(layout.losses.mean(), weight_grad, rate_grad, fast)
