"""C-MAML: the continual-MAML ablation of La-MAML (Gupta et al. 2020, section 4).

The La-MAML look-ahead objective with fixed inner rates (every alpha = ``alpha_init``, never
learned) and a plain SGD step of the weights with scalar rate ``opt_wt`` (beta).
"""
from pydantic import Field

from .base import register
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class CMAMLParams(LookaheadParams):
    opt_wt: float = Field(0.1, ge=0, allow_inf_nan=False, description="beta: SGD rate of the weights")


@register
class CMAML(LookaheadMetaLearner):
    name = "c-maml"
    summary = "C-MAML: look-ahead meta-learning with fixed inner rates, SGD on the weights"
    Params = CMAMLParams
    options = LookaheadOptions(learn_lr=False, sync_update=True)
