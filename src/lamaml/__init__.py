"""lamaml: online continual learning with La-MAML (Gupta, Yadav & Paull, NeurIPS 2020)."""
import os

# MKL's strict conditional numerical reproducibility: its matrix products round the same whatever the
# thread count, so a run's numbers do not depend on how many threads trained it (``--seeds`` trains
# its seeds on two, each separate run trains on one, and they agree to the bit: tests/test_seeds.py).
# MKL reads this at its first call, so it holds wherever lamaml is imported before any torch
# arithmetic (the CLI, sweeps' workers); a user's own MKL_CBWR wins. Cost: 2-3 % on MNIST.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

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
