"""Per-task episodic memory (GEM, A-GEM): the last ``per_task`` samples of every task seen."""
from __future__ import annotations

import torch


class EpisodicMemory:
    """A ring buffer per task; tasks are kept in the order they were first seen."""

    def __init__(self, per_task: int):
        self.per_task = per_task
        self.x: dict[int, torch.Tensor] = {}
        self.y: dict[int, torch.Tensor] = {}
        self.filled: dict[int, int] = {}
        self.cursor: dict[int, int] = {}

    @property
    def tasks(self) -> list[int]:
        return list(self.x)

    def add(self, x: torch.Tensor, y: torch.Tensor, task: int) -> None:
        if task not in self.x:
            self.x[task] = torch.empty((self.per_task, *x.shape[1:]), dtype=x.dtype, device=x.device)
            self.y[task] = torch.empty(self.per_task, dtype=y.dtype, device=y.device)
            self.filled[task] = self.cursor[task] = 0
        x, y = x[-self.per_task:], y[-self.per_task:]        # a batch larger than the memory keeps its tail
        slots = (self.cursor[task] + torch.arange(len(y))) % self.per_task
        self.x[task][slots] = x
        self.y[task][slots] = y
        self.cursor[task] = int((self.cursor[task] + len(y)) % self.per_task)
        self.filled[task] = min(self.per_task, self.filled[task] + len(y))

    def get(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.filled[task]
        return self.x[task][:n], self.y[task][:n]

    def state_dict(self) -> dict:
        return {"x": dict(self.x), "y": dict(self.y), "filled": dict(self.filled), "cursor": dict(self.cursor)}

    def load_state_dict(self, state: dict) -> None:
        self.x, self.y = dict(state["x"]), dict(state["y"])
        self.filled, self.cursor = dict(state["filled"]), dict(state["cursor"])
