"""Sync La-MAML: the synchronous ablation of La-MAML (Gupta et al. 2020, section 4).

The per-parameter rates alpha are meta-learned as in La-MAML but only drive the inner loop; the
weights take a plain SGD step with scalar rate ``opt_wt`` (beta).
"""
from pydantic import Field

from .base import register
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class SyncParams(LookaheadParams):
    opt_lr: float = Field(0.1, ge=0, allow_inf_nan=False,
                          description="eta: SGD learning rate of the per-parameter rates alpha")
    opt_wt: float = Field(0.3, ge=0, allow_inf_nan=False, description="beta: SGD rate of the weights")


@register
class SyncLaMAML(LookaheadMetaLearner):
    name = "sync-la-maml"
    summary = "Sync La-MAML: learned inner rates, SGD with a scalar rate on the weights"
    Params = SyncParams
    options = LookaheadOptions(learn_lr=True, sync_update=True)
