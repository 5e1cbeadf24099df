"""lamaml: online continual learning with La-MAML (Gupta, Yadav & Paull, NeurIPS 2020)."""
__version__ = "0.1.0"

from .api import fit  # noqa: E402
from .data import Task, TaskStream, stream_from_data  # noqa: E402
from .errors import DataError, LamamlError, RunFailed, UserError  # noqa: E402

__all__ = ["DataError", "LamamlError", "RunFailed", "Task", "TaskStream", "UserError", "__version__",
           "fit", "stream_from_data"]
