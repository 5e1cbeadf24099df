"""Checkpoints: everything a run needs to continue exactly, written so a kill never loses one.

A checkpoint file is the sha256 of its payload followed by the payload (``torch.save`` of
tensors, numbers, strings and containers only). Loading verifies the digest and uses
``torch.load(weights_only=True)``, so a corrupted file is detected and a hostile one cannot run
code. Each save writes a temporary file, fsyncs it, moves the current checkpoint to
``checkpoint.prev.pt`` and the new one into place: at every instant at least one good checkpoint
exists, and a corrupted current one falls back to the previous.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_open
from ..errors import UserError

CURRENT, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"
FORMAT = 2   # 2: look-ahead learners keep their rates flat; progress counts its batches
_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook: ``LAMAML_FAULT=name:n`` SIGKILLs this process the n-th time it passes ``name``.

    Lets the tests kill a run at exact places (mid-batch, mid-checkpoint-write) instead of at
    random times. Does nothing unless that variable is set.
    """
    spec = os.environ.get("LAMAML_FAULT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target == name:
        _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
        if _FAULT_COUNTS[name] == int(count or 1):
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Every:
    """How often to checkpoint: every N tasks, N minutes (``10m``) or N batches (``50b``)."""

    amount: float
    unit: str   # "tasks", "minutes" or "batches"

    @staticmethod
    def parse(text: str) -> "Every":
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(m|b|t)?\s*", str(text))
        if not match or float(match.group(1)) <= 0:
            raise UserError(f"--checkpoint-every {text}: expected N (tasks), Nm (minutes) or Nb (batches), N > 0")
        unit = {"m": "minutes", "b": "batches", None: "tasks", "t": "tasks"}[match.group(2)]
        amount = float(match.group(1))
        if unit != "minutes" and amount != int(amount):
            raise UserError(f"--checkpoint-every {text}: a number of {unit} must be whole")
        return Every(amount, unit)

    def __str__(self) -> str:
        number = f"{self.amount:g}"
        return number + {"tasks": "", "minutes": "m", "batches": "b"}[self.unit]


class Checkpointer:
    def __init__(self, folder: Path, every: Every, header: dict[str, Any]):
        self.folder, self.every, self.header = Path(folder), every, header
        self.last_save, self.batches = time.monotonic(), 0

    def due(self, *, task_done: bool, tasks_done: int) -> bool:
        if task_done:
            return self.every.unit == "tasks" and tasks_done % int(self.every.amount) == 0
        self.batches += 1
        if self.every.unit == "batches":
            return self.batches % int(self.every.amount) == 0
        return self.every.unit == "minutes" and time.monotonic() - self.last_save >= 60 * self.every.amount

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **self.header, **state, "saved_at": time.time()}, buffer)
        payload = buffer.getvalue()

        def keep_previous():    # the new file is complete and fsynced; the current one becomes the previous
            fault_point("checkpoint-written")
            if (self.folder / CURRENT).exists():
                os.replace(self.folder / CURRENT, self.folder / PREVIOUS)
            fault_point("checkpoint-rotated")
        with atomic_open(self.folder / CURRENT, "wb", before_replace=keep_previous) as handle:
            handle.write(hashlib.sha256(payload).digest())
            handle.write(payload)
        self.last_save = time.monotonic()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Verify and load one checkpoint file; a UserError says what is wrong with it."""
    raw = path.read_bytes()
    digest, payload = raw[:32], raw[32:]
    if len(raw) < 33 or hashlib.sha256(payload).digest() != digest:
        raise UserError(f"{path} is corrupt (its checksum does not match its content)")
    try:
        with warnings.catch_warnings():     # torch's own warnings about a refused file would precede our one line
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as error:   # noqa: BLE001 - any unpickling refusal means "not a checkpoint of ours"
        raise UserError(f"{path} is not a lamaml checkpoint or holds objects it may not ({error.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a lamaml checkpoint of format {FORMAT}")
    return state


def load_latest(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The newest good checkpoint in ``folder`` and warnings about any bad one skipped."""
    refused = []
    for name in (CURRENT, PREVIOUS):
        path = Path(folder) / name
        if not path.exists():
            continue
        try:
            state = read_checkpoint(path)
        except UserError as error:
            refused.append(str(error))
            continue
        except FileNotFoundError:   # rotated or removed by the run writing it since exists(): try the other
            continue
        return state, [f"{problem}; resuming from the previous checkpoint, {path.name}" for problem in refused]
    if refused:
        if not (Path(folder) / PREVIOUS).exists():
            refused.append(f"there is no previous checkpoint ({PREVIOUS}) to fall back on")
        raise UserError(f"no usable checkpoint in {folder}: " + "; ".join(refused))
    raise UserError(f"--resume {folder}: no checkpoint there (expected {CURRENT}; runs write one with --checkpoint-every)")
