"""Methods: one file each, all keeping the ``observe``/``predict`` contract of ``base.Method``."""
from ..errors import UserError
from . import agem, c_maml, der, er, er_ace, ewc, gem, icarl, iid, la_er, la_maml, mer, meta_bgd, online, sync_la_maml, vr_mcl  # noqa: F401  (registration)
from .base import METHODS, Method, MethodParams


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


__all__ = ["METHODS", "Method", "MethodParams", "method_class"]
