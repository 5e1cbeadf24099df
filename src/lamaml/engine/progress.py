"""Where a run stands, kept in every checkpoint so a killed run continues exactly."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Progress:
    """Where a run stands: the next (task, epoch, batch), and everything measured so far."""

    matrix: np.ndarray
    baseline: np.ndarray | None = None
    task: int = 0
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None      # this epoch's sample order, while inside an epoch
    loss_sum: float = 0.0                  # this phase's losses so far, and how many batches they are
    loss_count: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    updates: int = 0
    task_losses: list[float] = field(default_factory=list)
    train_time_after_task: list[float] = field(default_factory=list)   # cumulative, seconds
    series: dict[str, list] = field(default_factory=dict)               # the probes' measurements
    anytime: list[dict] = field(default_factory=list)   # anytime evaluation's points (engine/anytime.py)
    test_matrix: np.ndarray | None = None   # with a validation split, the matrix on the test split
    test_baseline: np.ndarray | None = None

    ARRAYS = ("matrix", "baseline", "test_matrix", "test_baseline")

    def state_dict(self) -> dict:
        state = dict(self.__dict__)
        for key in self.ARRAYS:   # tensors, so the checkpoint loads with weights_only
            state[key] = None if state[key] is None else torch.from_numpy(state[key].copy())
        state["order"] = None if self.order is None else self.order.cpu()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Progress":
        state = dict(state)
        for key in cls.ARRAYS:
            state[key] = None if state.get(key) is None else state[key].numpy()
        return cls(**state)
