"""GEM's gradient projection, solved through its dual as non-negative least squares.

GEM (Lopez-Paz & Ranzato 2017, eq. 10-13) replaces the gradient g by the closest g~ with
<g~, g_k> >= 0 for the gradient g_k of every past task. Its dual, for G = [g_1 .. g_t]^T, is

    min_v  1/2 v^T G G^T v + (G g)^T v    s.t.  v >= margin,        g~ = G^T v + g

and 1/2 v^T G G^T v + (G g)^T v = 1/2 ||G^T v + g||^2 - const, so with v = margin + u it is
the non-negative least-squares problem  min_{u >= 0} ||G^T u + (g + margin G^T 1)||.
We solve it in the t-dimensional space with the GEM code's ridge: for P = G G^T + eps I = L L^T,
the dual 1/2 v^T P v + (G g)^T v with v = margin + u is, up to a constant,
1/2 u^T P u + (G g + margin P 1)^T u = 1/2 ||L^T u - b||^2 with b = -L^{-1} (G g + margin P 1),
solved with scipy's NNLS (the ridge enters the linear term too: margin * eps per row). The GEM
code adds eps = 1e-3 for quadprog's sake, which lets constraints be violated by up to eps*v;
our default eps only guards the factorisation, so the constraints hold to rounding.
No GPL or non-commercial code is involved.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls


def project_to_cone(g: torch.Tensor, G: torch.Tensor, margin: float = 0.0, eps: float = 0.0) -> torch.Tensor:
    """Project the flat gradient ``g`` (p,) against the rows of ``G`` (t, p); returns g~ (p,).

    The long products stay in the gradients' dtype and device; only the t x t problem moves to
    float64 on the CPU.
    """
    t = len(G)
    gram = (G @ G.T).double().cpu().numpy()
    jitter = max(eps, 1e-12 * max(np.trace(gram) / t, 1e-30))
    P = gram + jitter * np.eye(t)
    rhs = (G @ g).double().cpu().numpy() + margin * P.sum(1)      # G g + margin P 1
    L = np.linalg.cholesky(P)
    b = -np.linalg.solve(L, rhs)
    u, _ = nnls(L.T, b, maxiter=50 * t)
    v = torch.as_tensor(u + margin, dtype=G.dtype, device=G.device)
    return G.T @ v + g
