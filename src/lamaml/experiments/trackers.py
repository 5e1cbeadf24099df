"""Optional experiment trackers, as run-loop plugins. Each works offline, never prompts, and is off
unless asked for.

TensorBoard (``lamaml run --tensorboard DIR``, needs ``pip install 'lamaml[tensorboard]'``):
each run in its own subfolder ``DIR/<benchmark>-<method>-seed<k>-<start time>`` (a resumed run
continues in its own), so runs sharing DIR sit side by side instead of merging; the run's config
(as text at the start, as hyperparameters beside the final RA and BTI at the end), the training
loss of every incoming batch, the accuracy of every task and the retained accuracy after each
task, the final metrics, and the analyses' series when a run measures them.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine.metrics import ra_so_far
from ..engine.plugins import Plugin
from ..errors import UserError


def require_tensorboard():
    """TensorBoard's ``SummaryWriter``, or a UserError saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs TensorBoard: pip install 'lamaml[tensorboard]'") from None
    return SummaryWriter


def run_folder(logdir: Path, config, resume: dict | None = None) -> Path:
    """This run's subfolder of ``logdir``: named by benchmark, method, seed and start time (a resumed
    run's own start time, so it continues there); a new run never shares one."""
    started = resume.get("started_at") if resume else None
    stamp = re.sub(r"[^0-9T]", "", (started or datetime.now(timezone.utc).isoformat(timespec="seconds"))[:19])
    base = f"{config.benchmark}-{config.method}-seed{config.seed}-{stamp}"
    folder, n = Path(logdir) / base, 1
    while folder.exists() and resume is None:
        n += 1
        folder = Path(logdir) / f"{base}-{n}"
    return folder


def _hparam(value: Any) -> Any:
    """A config value as TensorBoard's hyperparameters take it (numbers, text, booleans)."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


class TensorBoard(Plugin):
    """Logs one run into its own subfolder of ``logdir`` (``self.folder``)."""

    def __init__(self, logdir: Path, stream_length: int, config, resume: dict | None = None):
        SummaryWriter = require_tensorboard()
        self.folder = run_folder(logdir, config, resume)
        self.writer, self.stream_length, self.batches = SummaryWriter(log_dir=str(self.folder)), stream_length, 0
        self.config, self.glances = config.model_dump(), config.glances
        if resume is None:
            self.writer.add_text("config", "```\n" + json.dumps(self.config, indent=2) + "\n```", 0)

    def run_starts(self, run) -> None:
        self.batches = run.progress.updates // self.glances     # a resumed run continues its loss curve

    def batch_done(self, run, task: int, loss: float) -> None:
        self.batches += 1
        self.writer.add_scalar("train/loss", loss, self.batches)

    def task_done(self, run, task: int, row) -> None:
        ra = ra_so_far(row, task)
        if ra is not None:      # not measured under evaluate=metrics before the last task
            self.writer.add_scalar("eval/retained_accuracy", ra, task + 1)
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
        # TensorBoard's HPARAMS view: this run's settings beside its final metrics
        from torch.utils.tensorboard.summary import hparams
        flat = {**{k: v for k, v in self.config.items() if k != "params"},
                **{f"params.{k}": v for k, v in self.config.get("params", {}).items()}}
        finals = {f"hparam/{k}": float(metrics[k]) for k in ("ra", "bti") if metrics.get(k) is not None}
        for summary in hparams({k: _hparam(v) for k, v in flat.items()}, finals):
            self.writer.file_writer.add_summary(summary)
        for key, value in finals.items():
            write(key, value, 0)
        self.writer.close()
