"""The update rule of the La-MAML family, written once (Gupta et al. 2020, Algorithm 1, lines 10-11).

    clip the weights' and the rates' meta-gradients apart, by global L2 norm
    alpha <- alpha - eta * grad_alpha                       (if the rates are learned; first)
    theta <- theta - relu(alpha) * grad_theta               (La-MAML, La-ER: the new rates)
          or theta - beta * grad_theta                      (Sync La-MAML, C-MAML)

With variance reduction (VR-MCL), ``variance_reduced`` first forms the weights' direction from the
meta-gradients at the current and the previous weights, and ``apply_update`` steps along it unclipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .state import LookaheadState


def chunk_bounds(batch_size: int, inner_steps: int | None) -> tuple[tuple[int, int], ...]:
    """Inner-step slices of the incoming batch: one sample each, or ceil(B/k)-sized chunks."""
    if inner_steps is None:
        return tuple((i, i + 1) for i in range(batch_size))
    size = math.ceil(batch_size / inner_steps)
    return tuple((i * size, min((i + 1) * size, batch_size)) for i in range(inner_steps) if i * size < batch_size)


@dataclass(frozen=True)
class Plan:
    """What one meta-gradient computes, for a batch of a given size (a backend's whole brief)."""

    chunks: tuple[tuple[int, int], ...]   # the incoming batch's slices, one per inner step
    mean_over_steps: bool                 # meta-loss: mean over every inner step, or the last one
    second_order: bool                    # differentiate through the inner gradients
    inner_clamp: float | None             # element-wise clamp of the inner gradients
    relu_in_inner: bool                   # inner steps use relu(alpha), or alpha as is
    learn_rates: bool                     # return the rates' meta-gradient
    weight_gradient: bool                 # return the weights' meta-gradient
    keep_fast_weights: bool               # return the weights the last inner step reached


class MetaGradient(NamedTuple):
    loss: torch.Tensor                    # the meta-loss, detached
    weights: torch.Tensor | None          # d meta-loss / d theta_0, flat
    rates: torch.Tensor | None            # d meta-loss / d alpha, flat
    fast: torch.Tensor | None             # the last inner step's weights, flat


def clip_(flat: torch.Tensor, max_norm: float | None) -> None:
    """In place, as ``torch.nn.utils.clip_grad_norm_`` (same 1e-6 guard), without host syncs."""
    if max_norm is not None:
        flat.mul_((max_norm / (torch.linalg.vector_norm(flat) + 1e-6)).clamp(max=1.0))


def clip_rows_(rows: torch.Tensor, max_norm: float | None) -> None:
    """``clip_`` on each row of ``rows`` (one seed's flat gradient per row), in three operations."""
    if max_norm is not None:
        norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
        rows.mul_(norms.add_(1e-6).reciprocal_().mul_(max_norm).clamp_(max=1.0))


@torch.no_grad()
def variance_reduced(current: MetaGradient, previous: MetaGradient, momentum: torch.Tensor | None, *,
                     ratio: float, clip: float | None,
                     rates_from_both: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """VR-MCL's momentum-based variance reduction (STORM) of the meta-gradient, in place.

    ``current``: at the weights theta_t; ``previous``: at the previous weights theta_{t-1}, same
    rates, same inner batch, same meta-batch. Each weights' meta-gradient is clipped on its own, then

        m_t = g_t + r * (m_{t-1} - g'_t)        (m_t = g_t while there is no m_{t-1})

    Returns ``(m_t, rates' gradient)``: m_t is ``momentum`` updated in place (a new tensor at the
    first step), to be stepped along unclipped; the rates' gradient is ``clip(a_t) + a'_t`` with
    ``rates_from_both`` (the authors' code: both look-aheads share the rates, so both gradients reach
    them; ``apply_update``'s clip is then their second clip), else ``a_t``."""
    g, g_previous = current.weights, previous.weights
    clip_(g, clip)
    clip_(g_previous, clip)
    if momentum is None:
        momentum = g.clone()
    else:
        momentum.sub_(g_previous).mul_(ratio).add_(g)
    rates = current.rates
    if rates is not None and rates_from_both:
        clip_(rates, clip)
        rates.add_(previous.rates)
    return momentum, rates


@torch.no_grad()
def apply_update(state: LookaheadState, weight_grad: torch.Tensor, rate_grad: torch.Tensor | None, *,
                 clip: float | None, rate_lr: float | None, weight_lr: float | None,
                 clip_weights: bool = True) -> None:
    """One meta-update of ``state`` in place. ``rate_grad`` None: the rates stay; ``weight_lr`` None:
    the weights step by relu(alpha) (asynchronous), else by the scalar ``weight_lr`` (beta);
    ``clip_weights`` False: ``weight_grad`` is a direction already formed from clipped gradients
    (``variance_reduced``)."""
    if clip_weights:
        clip_(weight_grad, clip)
    if rate_grad is not None:
        clip_(rate_grad, clip)
        state.rates.add_(rate_grad, alpha=-rate_lr)     # rates first: the weights step uses the new rates
    if weight_lr is None:
        state.weights.addcmul_(torch.relu(state.rates), weight_grad, value=-1.0)
    else:
        state.weights.add_(weight_grad, alpha=-weight_lr)
