"""La-ER: La-MAML's learned learning rates on top of experience replay (Gupta et al. 2020, ablation).

The per-parameter rates alpha are meta-learned exactly as in La-MAML's look-ahead (inner steps on
the incoming batch, meta-loss on replay + batch), but the weights are not meta-learned: they take
the plain replay gradient at the slow weights, scaled by relu(alpha) (the authors' eralg4.py, Net.la_ER).
Defaults follow the authors' ``eralg4.py --learn_lr``: 5 inner chunks, element-wise inner clamp at
the clip value, raw alpha in the inner step, only the last step's meta-loss, first order; and, as
ER there, the batch enters memory after its last glance, on every epoch.
"""
from typing import Literal

from pydantic import Field

from .base import register
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class LaERParams(LookaheadParams):
    opt_lr: float = Field(0.1, ge=0, allow_inf_nan=False, description="eta: SGD rate of alpha")
    alpha_init: float = Field(0.1, ge=0, allow_inf_nan=False, description="initial rates")
    inner_steps: int | None = Field(5, ge=1, description="inner chunks (cifar_batches)")
    inner_clamp: float | None = Field(2.0, gt=0, allow_inf_nan=False, description="element-wise inner clamp")
    relu_in_inner: bool = Field(False, description="inner step uses relu(alpha)")
    meta_loss: Literal["mean", "last"] = Field("last", description="only the last inner step counts")


@register
class LaER(LookaheadMetaLearner):
    name = "la-er"
    summary = "La-ER: replay SGD whose per-parameter rates are meta-learned as in La-MAML"
    Params = LaERParams
    options = LookaheadOptions(learn_lr=True, sync_update=False, replay_weight_gradient=True,
                               push_after_last_glance=True)
