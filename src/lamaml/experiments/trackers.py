"""Optional experiment trackers, as run-loop plugins. Each works offline, never prompts, and is off
unless asked for.

TensorBoard (``lamaml run --tensorboard DIR``, needs ``pip install 'lamaml[tensorboard]'``):
the training loss of every incoming batch, the accuracy of every task and the retained
accuracy after each task, the final metrics, and the analyses' series when a run measures them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.plugins import Plugin
from ..errors import UserError


def require_tensorboard():
    """TensorBoard's ``SummaryWriter``, or a UserError saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs TensorBoard: pip install 'lamaml[tensorboard]'") from None
    return SummaryWriter


class TensorBoard(Plugin):
    def __init__(self, logdir: Path, stream_length: int):
        SummaryWriter = require_tensorboard()
        self.writer, self.stream_length, self.batches = SummaryWriter(log_dir=str(logdir)), stream_length, 0

    def batch_done(self, run, task: int, loss: float) -> None:
        self.batches += 1
        self.writer.add_scalar("train/loss", loss, self.batches)

    def task_done(self, run, task: int, row) -> None:
        self.writer.add_scalar("eval/retained_accuracy", float(row[:task + 1].mean()), task + 1)
        for j in range(self.stream_length):
            if row[j] == row[j]:   # not NaN: the entry was evaluated
                self.writer.add_scalar(f"eval/task_{j:03d}_accuracy", float(row[j]), task + 1)

    def finish(self, metrics: dict[str, Any]) -> None:
        """The final metrics and the analyses' series; closes the log."""
        write = self.writer.add_scalar
        for key in ("ra", "bti", "bwt", "learning_accuracy", "fwt", "train_time_s", "eval_time_s"):
            if metrics.get(key) is not None:
                write(f"final/{key}", metrics[key], 0)
        series = metrics.get("series", {})
        for point in series.get("alignment", []):
            write("analysis/gradient_alignment", point["cosine"], point["task"])
        for point in series.get("fast-weights", []):
            write("analysis/ra_fast_weights", point["ra_fast"], point["update"])
            write("analysis/ra_after_meta_update", point["ra_after"], point["update"])
        for point in series.get("lr-stats", []):
            write(f"analysis/lr_mean/{point['parameter']}", point["mean"], point["update"])
            write(f"analysis/lr_nonpositive/{point['parameter']}", point["fraction_nonpositive"], point["update"])
        self.writer.close()
