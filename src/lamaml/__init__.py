"""lamaml: online continual learning with La-MAML (Gupta, Yadav & Paull, NeurIPS 2020)."""
from .errors import DataError, LamamlError, RunFailed, UserError
from .version import __version__

# Imported on first use (PEP 562): `lamaml --help` and the errors above need no torch.
_LAZY = {"fit": ".api", "benchmark": ".api", "Benchmark": ".engine", "Task": ".data", "TaskStream": ".data",
         "stream_from_data": ".data"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamaml' has no attribute {name!r}")


__all__ = ["Benchmark", "DataError", "LamamlError", "RunFailed", "Task", "TaskStream", "UserError", "__version__",
           "benchmark", "fit", "stream_from_data"]
