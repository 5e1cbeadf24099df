"""The closed-form meta-gradients of ``closed_form.py`` for S seeds at once, the first layer factored.

The seeds' weights and rates are rows of (S, P) buffers; every product is batched over the seeds.
Batching alone saves little on a CPU: a seed's meta-update is arithmetic (on MNIST, ten 21-row
products through the 784 x 100 first layer, ten 20-row products for its meta-gradient, and six
passes over its 78,500 numbers per inner step), which S seeds repeat S times. So the first layer,
which holds 88 % of the numbers (78,500 of 89,610), is never stepped: with first-order inner gradients of rank one
per incoming row (``g = sum_k delta_k x_k^T`` over the chunk's rows, no element-wise clamp),

    (W - R * sum_{k<} delta_k x_k^T) a  =  W a - sum_{k<} delta_k * (R (x_k * a))          (* element-wise)

so the first layer's output for any row ``a`` read at inner step i is its output at the initial
weights minus a sum over the incoming rows k of earlier chunks, and ``R (x_k * a)`` is one
product for all pairs (k, a) at once. The meta-gradients follow from the deltas alone:

    sum_i m_i                 = (sum_i D_i)^T X                   m_i = D_i^T X   (X: the meta rows)
    sum_i m_i * S_{i-1}       = sum_{k, r} (delta_k * E_{k,r}) (x_k * X_r)^T
                                with E_{k,r} = sum over meta-steps i after k's chunk of D_i[r]

(and the biases alike, with x = 1). The meta-batch ends with the incoming rows, so every row is a
meta row and each product x_k * x_j of two incoming rows is formed once: on MNIST 155 pairs. Per
seed and meta-update that is four large products instead of thirty small ones and sixty passes
over the layer (27 M multiply-adds instead of 33 M), the same maths as ``ClosedFormMLP`` summed in
another order: tests hold the two to 1e-10 relative in float64 (tests/test_seeds.py). The deeper
layers (12 % of the numbers) take the closed form's own steps, batched.
"""
from __future__ import annotations

import torch

from .closed_form import ClosedFormMLP
from .state import LookaheadState
from .update import MetaGradient, Plan


def seed_buffer(seeds: int, shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised (seeds, *shape) tensor whose every seed's slice starts on a 64-byte boundary,
    aligned as a tensor of ``shape`` allocated alone would be."""
    numel, itemsize = torch.Size(shape).numel(), torch.empty((), dtype=dtype).element_size()
    stride = -(-numel * itemsize // 64) * 64 // itemsize
    return torch.empty(seeds, stride, dtype=dtype, device=device)[:, :numel].view(seeds, *shape)


def stacked_views(flat: torch.Tensor, like: list[torch.Size]) -> list[torch.Tensor]:
    """Views of the (S, P) ``flat`` shaped (S, *shape) for each shape of ``like``, in order."""
    out, offset = [], 0
    for shape in like:
        n = torch.Size(shape).numel()
        out.append(flat[:, offset:offset + n].view(flat.shape[0], *shape))
        offset += n
    return out


class _Pass:
    """One forward/backward at inner step i over [chunk i's rows; meta rows], for every seed."""

    def __init__(self, act1, delta1, target, weight, n_inner: int, want_inner: bool, want_meta: bool,
                 widths: list[int]):
        seeds, rows, dtype, device = act1.shape[0], act1.shape[1], act1.dtype, act1.device
        self.target, self.weight = target, weight
        self.n_inner, self.want_inner, self.want_meta = n_inner, want_inner, want_meta
        buffer = lambda width: seed_buffer(seeds, (rows, width), dtype, device)  # noqa: E731
        self.acts = [None, act1] + [buffer(w) for w in widths[2:-1]]       # inputs of each layer (the
        self.deltas = [delta1] + [buffer(w) for w in widths[2:]]           # first layer's are not read)
        self.log_p = buffer(widths[-1])
        self.logits = self.deltas[-1]
        split = lambda t: (t[:, :n_inner], t[:, n_inner:])  # noqa: E731
        self.acts_split = [None] + [split(a) for a in self.acts[1:]]
        self.deltas_split = [split(d) for d in self.deltas]
        self.deltas_T_split = [tuple(part.transpose(1, 2) for part in pair) for pair in self.deltas_split]
        self.meta_log_p = self.log_p[:, n_inner:].reshape(seeds, 1, -1)
        self.meta_target = target[:, n_inner:].reshape(seeds, -1, 1)
        self.zacc_rows = None       # which rows of the first layer's running outputs this pass reads
        self.steps = []             # after the pass: each of its incoming rows' step of those outputs


class _Layout:
    """Rows, loss weights and every buffer of one batch shape (incoming rows, meta rows, chunks, loss
    mode), for S seeds; built once and cached, so a meta-update allocates nothing.

    The meta-batch is the replay rows then the incoming rows (``LookaheadMetaLearner.meta_batch``),
    so the rows are the meta-batch's alone: incoming row k is meta row ``n_replay + k``, and its
    first-layer output at any step is the meta row's.
    """

    def __init__(self, seeds: int, batch: int, n_meta: int, chunks, mean_over_steps: bool, widths: list[int],
                 dtype: torch.dtype, device: torch.device):
        replay, last = n_meta - batch, len(chunks) - 1
        index, weight, bounds, offset = [], [], [], 0
        for i, (start, stop) in enumerate(list(chunks) + [(0, 0)]):
            want_meta = i > 0 and (mean_over_steps or i == last + 1)
            rows = list(range(replay + start, replay + stop)) + (list(range(n_meta)) if want_meta else [])
            index += rows
            weight += [1.0 / max(stop - start, 1)] * (stop - start) + ([1.0 / n_meta] * n_meta if want_meta else [])
            bounds.append((offset, offset + len(rows), rows, start, stop, i <= last, want_meta))
            offset += len(rows)
        total, (d_in, hidden) = len(index), widths[:2]
        empty = lambda *shape, dtype=dtype: seed_buffer(seeds, shape, dtype, device)  # noqa: E731
        tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
        self.batch, self.n_meta, self.replay = batch, n_meta, replay
        self.index = tensor(index)
        self.weight = torch.tensor(weight, dtype=dtype, device=device)[:, None]
        self.neg_weight = (-self.weight).expand(seeds, total, 1)
        self.source, self.labels = empty(n_meta, d_in), empty(n_meta, dtype=torch.long)
        self.rows_y, self.target = empty(total, 1, dtype=torch.long), empty(total, widths[-1])
        self.act1, self.delta1 = empty(total, hidden), empty(total, hidden)
        # The first layer's output of every meta row, at the initial weights minus the steps so far
        self.zacc = empty(n_meta, hidden)
        # Each incoming row k steps every meta row a by delta_k * Q[k, a], Q[k, a] = R (x_k * a) + r_b.
        # x_k * x_j = x_j * x_k: the pairs of two incoming rows are computed once.
        unique, pair_of = [], {}          # (row of x_k, row of a) -> the pair's place in Q
        for k in range(batch):
            for a in range(n_meta):
                pair = (replay + k, a) if a < replay else tuple(sorted((replay + k, a)))
                pair_of.setdefault(pair, len(pair_of))
                unique.append(pair)
        self.to_unique = tensor([pair_of[pair] for pair in unique])
        unique = list(pair_of)
        self.left, self.right = tensor([left for left, _ in unique]), tensor([right for _, right in unique])
        self.v_left, self.v_right = empty(len(unique), d_in), empty(len(unique), d_in)
        self.v, self.q = empty(len(unique), d_in), empty(len(unique), hidden)
        self.q_pairs = empty(batch * n_meta, hidden)              # Q[k, a], k-major
        self.passes, meta_rows, meta_pass, inner_rows = [], [], [], [0] * batch
        for i, (a, b, rows, start, stop, want_inner, want_meta) in enumerate(bounds):
            p = _Pass(self.act1[:, a:b], self.delta1[:, a:b], self.target[:, a:b], self.weight[a:b], stop - start,
                      want_inner, want_meta, widths)
            p.zacc_rows = tensor(rows)
            for j, k in enumerate(range(start, stop)):
                inner_rows[k] = a + j
                p.steps.append((self.delta1[:, a + j, None, :], self.q_pairs[:, k * n_meta:(k + 1) * n_meta]))
            if want_meta:
                meta_rows += list(range(b - n_meta, b))
                meta_pass.append(i)
            self.passes.append(p)
        chunk_of = {k: i for i, (start, stop) in enumerate(chunks) for k in range(start, stop)}
        self.meta_rows, self.inner_rows = tensor(meta_rows), tensor(inner_rows)
        # later[k, m]: meta-step m comes after k's inner step, so pairs with it
        self.later = torch.tensor([[float(i > chunk_of[k]) for i in meta_pass] for k in range(batch)],
                                  dtype=dtype, device=device)
        self.d_meta = empty(len(meta_rows), hidden)
        self.d_inner = empty(batch, hidden)
        self.d_meta_sum = empty(n_meta, hidden)
        self.pairs = empty(batch, n_meta * hidden)
        self.u_pairs, self.u = empty(batch * n_meta, hidden), empty(len(unique), hidden)
        self.losses = empty(len(meta_pass))
        for column, p in enumerate(p for p in self.passes if p.want_meta):
            p.loss = self.losses[:, column, None, None]

    def load(self, metas) -> None:
        """Each seed's meta rows; targets are minus the one-hot labels times each row's weight."""
        for k, (meta_x, meta_y, _) in enumerate(metas):
            self.source[k].copy_(meta_x.reshape(self.n_meta, -1))
            self.labels[k].copy_(meta_y)
        torch.index_select(self.labels, 1, self.index, out=self.rows_y[:, :, 0])
        self.target.zero_().scatter_(2, self.rows_y, self.neg_weight)


class StackedClosedForm:
    """``ClosedFormMLP`` for S seeds at once, over weights and rates of shape (S, P), first layer factored.

    Holds for what ``ClosedFormMLP`` holds for, with two more conditions (``batched.unsupported``
    checks them): no element-wise clamp of the inner gradients, and at least two layers.
    """

    def __init__(self, weights: torch.Tensor, shapes: list[torch.Size]):
        self.seeds = weights.shape[0]
        self.widths = [shapes[0][1]] + [shape[0] for shape in shapes[0::2]]
        self.first = torch.Size(shapes[0]).numel() + torch.Size(shapes[1]).numel()   # the first layer's numbers
        make = lambda: seed_buffer(self.seeds, weights.shape[1:], weights.dtype, weights.device).zero_()  # noqa: E731
        self.fast, self.inner_grad, self.meta_grad = make(), make(), make()
        self.grad_sum, self.meta_sum, self.rate_sum, self.rates = make(), make(), make(), make()
        self.shapes = shapes
        self._fast = stacked_views(self.fast, shapes)
        self._inner = stacked_views(self.inner_grad, shapes)
        self._meta = stacked_views(self.meta_grad, shapes)
        self._meta_sum, self._rate_sum = stacked_views(self.meta_sum, shapes), stacked_views(self.rate_sum, shapes)
        self._rates = stacked_views(self.rates, shapes)
        self._fast_T = [None] + [v.transpose(1, 2) for v in self._fast[2::2]]
        self._fast_bias = [None] + [v[:, None, :] for v in self._fast[3::2]]
        self._layouts: dict = {}
        deep = slice(self.first, None)       # the layers stepped as in ClosedFormMLP
        self.deep = [t[:, deep] for t in (self.fast, self.inner_grad, self.meta_grad, self.grad_sum,
                                          self.meta_sum, self.rate_sum, self.rates)]

    def _layout(self, batch: int, n_meta: int, chunks, mean_over_steps: bool) -> _Layout:
        key = (batch, n_meta, chunks, mean_over_steps)
        if key not in self._layouts:
            self._layouts[key] = _Layout(self.seeds, batch, n_meta, chunks, mean_over_steps, self.widths,
                                         self.fast.dtype, self.fast.device)
        return self._layouts[key]

    def _start(self, layout: _Layout, weights: torch.Tensor) -> None:
        """The first layer's outputs of every row at the initial weights, and the factors of its steps."""
        w1, b1 = stacked_views(weights, self.shapes[:2])
        r1, rb1 = self._rates[0], self._rates[1][:, None, :]
        torch.baddbmm(b1[:, None, :], layout.source, w1.transpose(1, 2), out=layout.zacc)
        torch.index_select(layout.source, 1, layout.left, out=layout.v_left)
        torch.index_select(layout.source, 1, layout.right, out=layout.v_right)
        torch.mul(layout.v_left, layout.v_right, out=layout.v)
        torch.baddbmm(rb1, layout.v, r1.transpose(1, 2), out=layout.q)
        torch.index_select(layout.q, 1, layout.to_unique, out=layout.q_pairs)

    def _pass(self, p: _Pass) -> None:
        """Forward/backward at the fast weights; the deeper layers' gradients into ``inner_grad`` and
        ``meta_grad``, the first layer's deltas into the layout, each seed's meta-loss into ``p.loss``."""
        fast, fast_T, fast_bias = self._fast, self._fast_T, self._fast_bias
        p.acts[1].relu_()
        for l in range(1, len(fast_T) - 1):
            torch.baddbmm(fast_bias[l], p.acts[l], fast_T[l], out=p.acts[l + 1]).relu_()
        torch.baddbmm(fast_bias[-1], p.acts[-1], fast_T[-1], out=p.logits)
        torch.log_softmax(p.logits, 2, out=p.log_p)   # not the private .out variant: it ignores a strided out
        delta = p.deltas[-1]
        torch.addcmul(p.target, torch.exp(p.log_p, out=delta), p.weight, out=delta)
        if p.want_meta:
            torch.bmm(p.meta_log_p, p.meta_target, out=p.loss)
        inner, meta = self._inner, self._meta
        for layer in range(len(p.deltas) - 1, 0, -1):
            l = 2 * layer
            (a_inner, a_meta), (d_inner, d_meta) = p.acts_split[layer], p.deltas_split[layer]
            d_inner_T, d_meta_T = p.deltas_T_split[layer]
            if p.want_inner:
                torch.bmm(d_inner_T, a_inner, out=inner[l])
                torch.sum(d_inner, 1, out=inner[l + 1])
            if p.want_meta:
                torch.bmm(d_meta_T, a_meta, out=meta[l])
                torch.sum(d_meta, 1, out=meta[l + 1])
            below = p.deltas[layer - 1]
            torch.bmm(p.deltas[layer], fast[l], out=below)
            torch.ops.aten.threshold_backward.grad_input(below, p.acts[layer], 0, grad_input=below)

    def _first_layer_gradients(self, layout: _Layout, learn_rates: bool) -> None:
        """The first layer's sums of meta-gradients (and of their products with the inner steps before
        them), from the deltas every pass left in the layout."""
        seeds, batch, n_meta, hidden = self.seeds, layout.batch, layout.n_meta, self.widths[1]
        torch.index_select(layout.delta1, 1, layout.meta_rows, out=layout.d_meta)
        d_meta = layout.d_meta.view(seeds, -1, n_meta, hidden)                 # (S, meta-steps, rows, hidden)
        torch.sum(d_meta, 1, out=layout.d_meta_sum)
        torch.bmm(layout.d_meta_sum.transpose(1, 2), layout.source, out=self._meta_sum[0])
        torch.sum(layout.d_meta_sum, 1, out=self._meta_sum[1])
        if learn_rates:   # U[k, a] = delta_k * (D_i[a] summed over the meta-steps i after k's step)
            torch.index_select(layout.delta1, 1, layout.inner_rows, out=layout.d_inner)
            torch.matmul(layout.later, d_meta.reshape(seeds, -1, n_meta * hidden), out=layout.pairs)
            torch.mul(layout.pairs.view(seeds, batch, n_meta, hidden), layout.d_inner[:, :, None, :],
                      out=layout.u_pairs.view(seeds, batch, n_meta, hidden))
            layout.u.zero_().index_add_(1, layout.to_unique, layout.u_pairs)
            torch.bmm(layout.u.transpose(1, 2), layout.v, out=self._rate_sum[0])
            torch.sum(layout.u, 1, out=self._rate_sum[1])

    def __call__(self, weights: torch.Tensor, rates: torch.Tensor, batches, metas, plan: Plan):
        """Each seed's meta-loss (S,) and the meta-gradients of its weights and rates, (S, P)."""
        self.rates.copy_(rates)
        if plan.relu_in_inner:
            self.rates.relu_()
        layout = self._layout(len(batches[0][0]), len(metas[0][1]), plan.chunks, plan.mean_over_steps)
        layout.load(metas)
        self._start(layout, weights)
        fast, inner_grad, meta_grad, grad_sum, meta_sum, rate_sum, deep_rates = self.deep
        fast.copy_(weights[:, self.first:])
        grad_sum.zero_()
        meta_sum.zero_()
        rate_sum.zero_()
        for p in layout.passes:
            torch.index_select(layout.zacc, 1, p.zacc_rows, out=p.acts[1])
            self._pass(p)
            if p.want_meta:
                meta_sum += meta_grad
                if plan.learn_rates:   # m_i pairs with the sum of the inner gradients that led to theta_i
                    rate_sum.addcmul_(meta_grad, grad_sum)
            if p.want_inner:
                grad_sum += inner_grad
                fast.addcmul_(deep_rates, inner_grad, value=-1.0)
                for delta, q in p.steps:
                    layout.zacc.addcmul_(delta, q, value=-1.0)
        self._first_layer_gradients(layout, plan.learn_rates)
        n = layout.losses.shape[1]
        weight_grad = self.meta_sum.div_(n)
        rate_grad = None
        if plan.learn_rates:   # times relu'(alpha) where the inner step used relu(alpha)
            if plan.relu_in_inner:
                self.rate_sum.mul_(torch.sign(self.rates))
            rate_grad = self.rate_sum.mul_(-1.0 / n)
        return layout.losses.mean(1), weight_grad, rate_grad


class FactoredMLP:
    """A single run's closed-form backend: ``StackedClosedForm`` for one seed, the first layer factored.

    The same maths as ``ClosedFormMLP`` in another summation order, and on MNIST 1.7x faster per
    meta-update (BENCHMARKS.md): four large products replace thirty small ones and the sixty passes
    over the first layer. Because ``lamaml run --seeds`` computes its seeds with the same class, a
    seed of a batched run takes exactly the meta-updates of its separate run (tests/test_seeds.py).
    Where the factored form does not hold (an element-wise inner clamp, one layer) ``supports``
    says no; where a plan asks for the fast weights the factored form never forms (the fast-weights
    analysis), that meta-update takes ``ClosedFormMLP``.
    """

    name = "factored"

    @staticmethod
    def supports(model, plan: Plan, *, plain_loss: bool) -> bool:
        return ClosedFormMLP.supports(model, plan, plain_loss=plain_loss) and plan.inner_clamp is None \
            and len(list(model.parameters())) >= 4

    def __init__(self, state: LookaheadState):
        self.state = state
        self.stacked = StackedClosedForm(state.weights[None], [p.shape for p in state.parameters.values()])
        self.closed_form: ClosedFormMLP | None = None

    def __call__(self, state: LookaheadState, batch, meta, plan: Plan) -> MetaGradient:
        """``ClosedFormMLP.__call__``'s result; ``meta`` ends with the batch (``meta_batch`` draws it so)."""
        if plan.keep_fast_weights or plan.inner_clamp is not None:
            self.closed_form = self.closed_form or ClosedFormMLP(self.state)
            return self.closed_form(state, batch, meta, plan)
        (x, y, _) = batch
        loss, weight_grad, rate_grad = self.stacked(state.weights[None], state.rates[None], [(x, y)], [meta], plan)
        return MetaGradient(loss[0], weight_grad[0], None if rate_grad is None else rate_grad[0], None)
