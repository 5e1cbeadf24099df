"""Engine: the run loop, evaluation, metrics and result files. Names no particular method."""
from .benchmark import Benchmark, load_benchmark
from .evaluate import eval_mode
from .loop import StreamResult, train
from .metrics import summarize
from .plugins import Callbacks, Checkpoints, Plugin
from .results import peak_rss_mb, write_json_atomic
from .run import (build_learner, build_method, build_paper_model, cuda_numerics, derived_seeds, resolve_device, run,
                  train_as_configured)

__all__ = ["Benchmark", "Callbacks", "Checkpoints", "Plugin", "StreamResult", "build_learner", "build_method",
           "build_paper_model", "cuda_numerics", "derived_seeds", "eval_mode", "load_benchmark", "peak_rss_mb",
           "resolve_device", "run", "summarize", "train", "train_as_configured", "write_json_atomic"]
