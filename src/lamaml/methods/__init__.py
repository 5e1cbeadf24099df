"""Methods: one file each, all keeping the ``observe``/``predict`` contract of ``base.Method``."""
from ..errors import UserError
from . import agem, c_maml, der, er, er_ace, ewc, gem, icarl, iid, la_er, la_maml, mer, meta_bgd, online, sync_la_maml, vr_mcl  # noqa: F401  (registration)
from .base import METHODS, Method, MethodParams


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


def batched(learners: list[Method]):
    """One object that trains ``learners`` (one per seed of one configuration) in lock step as one
    computation, and None; or None and the reason they cannot be (each then trains on its own).
    Its ``observe(xs, ys, task, first_sight=...)`` and ``end_batch(...)`` take one batch per learner
    and do for each what the learner's own would; ``observe`` returns each learner's loss."""
    from .lookahead.batched import BatchedLookahead, unsupported
    reason = unsupported(learners)
    return (None, reason) if reason else (BatchedLookahead(learners), None)


__all__ = ["METHODS", "Method", "MethodParams", "batched", "method_class"]
