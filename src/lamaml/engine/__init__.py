"""Engine: the run loop, evaluation, metrics and result files. Names no particular method."""
from .loop import StreamResult, train_on_stream
from .metrics import summarize
from .results import peak_rss_mb, write_json_atomic
from .run import build_method, derived_seeds, resolve_device, run

__all__ = ["StreamResult", "build_method", "derived_seeds", "peak_rss_mb", "resolve_device", "run",
           "summarize", "train_on_stream", "write_json_atomic"]
