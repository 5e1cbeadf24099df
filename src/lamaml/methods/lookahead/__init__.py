"""The La-MAML family's shared core: one state, one update rule, two meta-gradient backends."""
from .learner import LookaheadMetaLearner, LookaheadOptions, LookaheadParams
from .state import LookaheadState
from .update import MetaGradient, Plan, apply_update, chunk_bounds

__all__ = ["LookaheadMetaLearner", "LookaheadOptions", "LookaheadParams", "LookaheadState", "MetaGradient",
           "Plan", "apply_update", "chunk_bounds"]
