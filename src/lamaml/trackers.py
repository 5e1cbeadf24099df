"""Optional experiment trackers. Each works offline, never prompts, and is off unless asked for.

TensorBoard (``lamaml run --tensorboard DIR``, needs ``pip install 'lamaml[tensorboard]'``):
the training loss of every incoming batch, the accuracy of every task and the retained
accuracy after each task, the final metrics, and the analyses' series when a run measures them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .errors import UserError


def tensorboard_hooks(logdir: Path, stream_length: int) -> tuple[dict[str, Callable], Callable[[dict], None]]:
    """Hooks for the run loop, and a function that writes the final metrics and closes the log."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs TensorBoard: pip install 'lamaml[tensorboard]'") from None
    writer = SummaryWriter(log_dir=str(logdir))
    step = {"batch": 0}

    def on_batch(task: int, loss: float) -> None:
        step["batch"] += 1
        writer.add_scalar("train/loss", loss, step["batch"])

    def on_task(task: int, row) -> None:
        writer.add_scalar("eval/retained_accuracy", float(row[:task + 1].mean()), task + 1)
        for j in range(stream_length):
            if row[j] == row[j]:   # not NaN: the entry was evaluated
                writer.add_scalar(f"eval/task_{j:03d}_accuracy", float(row[j]), task + 1)

    def finish(metrics: dict[str, Any]) -> None:
        for key in ("ra", "bti", "bwt", "learning_accuracy", "fwt", "train_time_s", "eval_time_s"):
            if metrics.get(key) is not None:
                writer.add_scalar(f"final/{key}", metrics[key], 0)
        series = metrics.get("series", {})
        for point in series.get("alignment", []):
            writer.add_scalar("analysis/gradient_alignment", point["cosine"], point["task"])
        for point in series.get("fast-weights", []):
            writer.add_scalar("analysis/ra_fast_weights", point["ra_fast"], point["update"])
            writer.add_scalar("analysis/ra_after_meta_update", point["ra_after"], point["update"])
        for point in series.get("lr-stats", []):
            writer.add_scalar(f"analysis/lr_mean/{point['parameter']}", point["mean"], point["update"])
            writer.add_scalar(f"analysis/lr_nonpositive/{point['parameter']}", point["fraction_nonpositive"],
                              point["update"])
        writer.close()

    return {"on_batch": on_batch, "on_task": on_task}, finish
