"""La-MAML: Look-ahead Meta-Learning for Continual Learning (Gupta, Yadav & Paull, NeurIPS 2020).

Algorithm 1 of the paper: per-parameter learning rates alpha are meta-learned with SGD(eta) and
then modulate the weights' own update, theta <- theta - relu(alpha) * grad (asynchronous update).
The shared core (the ``lookahead`` package) holds the algorithm; this file only fixes the variant.

Deliberate differences from the authors' code (montrealrobotics/La-MAML, model/lamaml.py), each an option:
reservoir sampling is uniform (``reservoir_off_by_one`` restores theirs); evaluation keeps every
test image (theirs drops the last one).
"""
from pydantic import Field

from .base import register
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class LaMAMLParams(LookaheadParams):
    opt_lr: float = Field(0.3, ge=0, allow_inf_nan=False,
                          description="eta: SGD learning rate of the per-parameter rates alpha")


@register
class LaMAML(LookaheadMetaLearner):
    name = "la-maml"
    summary = "La-MAML: learned per-parameter rates, weights updated by relu(alpha) * grad"
    Params = LaMAMLParams
    options = LookaheadOptions(learn_lr=True, sync_update=False)
