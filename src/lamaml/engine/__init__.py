"""Engine: the run loop, evaluation, metrics and result files. Names no particular method."""
from .loop import StreamResult, train
from .metrics import summarize
from .plugins import Callbacks, Checkpoints, Plugin
from .results import peak_rss_mb, write_json_atomic
from .run import build_method, derived_seeds, resolve_device, run

__all__ = ["Callbacks", "Checkpoints", "Plugin", "StreamResult", "build_method", "derived_seeds", "peak_rss_mb", "resolve_device", "run",
           "summarize", "train", "write_json_atomic"]
