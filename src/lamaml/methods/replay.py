"""Replay memory filled by reservoir sampling, preallocated on the data's device.

A memory may also keep one vector per slot beside each sample (DER's logits at insertion time):
pass ``logits`` to every ``add``; ``sample`` then returns them as a fourth tensor.
"""
from __future__ import annotations

import torch


class ReservoirMemory:
    """Keeps a uniform sample of everything ever offered, in ``capacity`` fixed slots.

    ``authors_off_by_one=True`` reproduces the La-MAML code, which draws the slot from
    ``randint(0, n_seen)`` inclusive, keeping the n-th sample with probability capacity/(n+1)
    instead of capacity/n: a slight bias against recent samples. The default is the uniform rule.
    """

    def __init__(self, capacity: int, generator: torch.Generator, authors_off_by_one: bool = False):
        self.capacity = capacity
        self.generator = generator
        self.off_by_one = int(authors_off_by_one)
        self.n_seen = 0
        self.size = 0
        self.x = self.y = self.t = self.logits = None

    def _allocate(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None) -> None:
        self.x = torch.empty((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
        self.y = torch.empty(self.capacity, dtype=y.dtype, device=y.device)
        self.t = torch.empty(self.capacity, dtype=torch.long, device=y.device)
        if logits is not None:
            self.logits = torch.empty((self.capacity, *logits.shape[1:]), dtype=logits.dtype, device=logits.device)

    def add(self, x: torch.Tensor, y: torch.Tensor, task: int, logits: torch.Tensor | None = None) -> None:
        """Offer a batch; ``logits`` (one row per sample, detached) are kept in the same slots."""
        if self.capacity == 0:
            return
        if self.x is None:
            self._allocate(x, y, logits)
        if (logits is None) != (self.logits is None):
            raise ValueError("a memory keeps logits for every sample or for none")
        # Slot for each sample: the next free one while filling, then a uniform draw over all
        # samples seen so far (kept only if it falls on a slot). Later samples in the batch
        # overwrite earlier ones on collision, exactly as one-at-a-time insertion would.
        seen = self.n_seen + torch.arange(1, len(x) + 1)
        draws = torch.rand(len(x), generator=self.generator, dtype=torch.float64)
        draws = (draws * (seen + self.off_by_one)).long()
        row_of_slot: dict[int, int] = {}
        for i, draw in enumerate(draws.tolist()):
            if self.size < self.capacity:
                row_of_slot[self.size] = i
                self.size += 1
            elif draw < self.capacity:
                row_of_slot[draw] = i
        self.n_seen += len(x)
        if row_of_slot:
            rows = torch.tensor(list(row_of_slot.values()), device=x.device)
            where = torch.tensor(list(row_of_slot.keys()), device=x.device)
            self.x.index_copy_(0, where, x.index_select(0, rows))
            self.y.index_copy_(0, where, y.index_select(0, rows))
            self.t[where] = task
            if logits is not None:
                self.logits.index_copy_(0, where, logits.detach().index_select(0, rows))

    def sample(self, k: int, replacement: bool = True):
        """``k`` stored samples (fewer if fewer are stored), drawn uniformly: (x, y, t), and their
        logits where the memory keeps them."""
        k = min(k, self.size)
        if k == 0:
            return None
        if replacement:
            index = torch.randint(self.size, (k,), generator=self.generator)
        else:
            index = torch.randperm(self.size, generator=self.generator)[:k]
        index = index.to(self.x.device, non_blocking=True)
        pick = lambda t: t.index_select(0, index)  # noqa: E731  (index_select: a plain gather, faster than t[index])
        drawn = pick(self.x), pick(self.y), pick(self.t)
        return drawn if self.logits is None else (*drawn, pick(self.logits))

    def state_dict(self) -> dict:
        return {"n_seen": self.n_seen, "size": self.size, "x": self.x, "y": self.y, "t": self.t,
                "logits": self.logits}

    def load_state_dict(self, state: dict) -> None:
        self.n_seen, self.size = state["n_seen"], state["size"]
        self.x, self.y, self.t = state["x"], state["y"], state["t"]
        self.logits = state.get("logits")     # checkpoints written before memories kept logits

    def snapshot(self) -> "ReservoirMemory":
        """A frozen copy to replay from; later ``add`` calls on this memory do not reach it."""
        copy = ReservoirMemory(self.capacity, self.generator)
        copy.size, copy.n_seen = self.size, self.n_seen
        if self.x is not None:
            copy.x, copy.y, copy.t = self.x.clone(), self.y.clone(), self.t.clone()
        if self.logits is not None:
            copy.logits = self.logits.clone()
        return copy
