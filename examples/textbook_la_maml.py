"""A new look-ahead variant in one file: La-MAML with the textbook MAML meta-loss.

The La-MAML family shares one core (``lamaml.methods.lookahead``); a variant is its hyperparameters
(a ``Params`` class whose defaults are the variant's) and its ``LookaheadOptions`` (what the update
does with the meta-gradients). This one takes the meta-loss at the last inner step only and
differentiates through the inner steps (second order), as MAML's paper writes it, where La-MAML
(the authors' code) averages the meta-loss over every inner step, first order.

    import lamaml, textbook_la_maml                      # importing registers it
    lamaml.fit(model, tasks, method="textbook-la-maml", glances=5)

or, from the command line, with this file's folder on PYTHONPATH and the preset of la-maml:
``python -c "import textbook_la_maml, lamaml.cli as c; c.main()" run --method textbook-la-maml ...``.
"""
from typing import Literal

from pydantic import Field

from lamaml.methods.base import register
from lamaml.methods.lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class TextbookParams(LookaheadParams):
    opt_lr: float = Field(0.3, ge=0, allow_inf_nan=False, description="eta: SGD rate of the learned rates")
    meta_loss: Literal["mean", "last"] = Field("last", description="MAML's meta-loss: after the last inner step")
    second_order: bool = Field(True, description="back-propagate through the inner gradients")


@register
class TextbookLaMAML(LookaheadMetaLearner):
    name = "textbook-la-maml"
    summary = "La-MAML with MAML's textbook meta-loss (last inner step, second order)"
    Params = TextbookParams
    options = LookaheadOptions(learn_lr=True, sync_update=False)   # learned rates, relu(alpha) on the weights
