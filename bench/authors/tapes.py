"""The authors' random draws, recorded while their code runs and handed to ours in the same order.

Their code draws with python's ``random`` and torch's global generator; ours with the generator a
method is handed. Each call is run on their side first, with the draws recorded; our side then runs
the same call and, wherever it would draw, takes the recorded draw instead:

* replay (ER, La-ER, MER, Meta-BGD, the La-MAML family): their ``getBatch`` picks each replay sample
  as ``order[j]`` after a ``shuffle(order)``. Their module's ``shuffle`` is wrapped to note the order
  after each call, so the slots drawn and the size of the pool they were drawn from are known.
  Our ``ReservoirMemory.sample`` then returns OUR memory's rows at those slots (both memories fill
  slots 0, 1, ... in arrival order, so slot numbers agree while the memories are not full). Any way
  the two disagree is counted and named, not hidden: a pool of a different size (a push at a
  different moment), rows of different content, or a slot ours has not filled yet (then their rows
  are used, so the rest of the update can still be compared).
* Meta-BGD's weight noise: their ``randomize_weights`` draws eps with ``torch.normal``; the eps of
  every Monte-Carlo draw are recorded and our ``torch.randn(..., generator=ours)`` calls return them.
* iCaRL's distillation exemplars: their ``random.randint(0, n - 1)`` per class is recorded, and our
  ``torch.rand(classes, generator=ours)`` returns (index + 0.5) / n, which our code floors back to
  the same index.
"""
from __future__ import annotations

import contextlib
import sys
from collections import Counter, deque
from dataclasses import dataclass

import torch

from lamaml.methods.replay import ReservoirMemory


@dataclass
class Draw:
    pool: int            # samples their replay was drawn from
    rows: list[int]      # the slots drawn, in order
    x: torch.Tensor | None
    y: torch.Tensor | None
    t: torch.Tensor | None


def _replay_rows(batch, n: int):
    """The replay part of what their getBatch returned: MER's lists put the incoming sample first,
    the others' tensors put the replay first."""
    bx, by, bt = batch
    if n == 0:
        return None, None, None
    if isinstance(bx, list):
        return torch.cat(bx[1:1 + n]), torch.stack(by[1:1 + n]).long(), torch.stack(bt[1:1 + n]).long()
    return bx[:n], by[:n], bt[:n]


class ReplayTape:
    def __init__(self):
        self.draws: deque[Draw] = deque()
        self.findings: Counter[str] = Counter()
        self.pools: list[str] = []     # "ours/theirs" pool sizes where they differ
        self.played = 0

    @contextlib.contextmanager
    def recording(self, net):
        """Record every replay draw of their ``net`` (its ``getBatch`` and its module's ``shuffle``)."""
        module = sys.modules[type(net).getBatch.__module__]
        shuffle, get_batch = module.shuffle, net.getBatch

        def recorded_get_batch(*args, **kwargs):
            orders = []

            def recording_shuffle(order):
                shuffle(order)
                orders.append(list(order))
            module.shuffle = recording_shuffle
            try:
                batch = get_batch(*args, **kwargs)
            finally:
                module.shuffle = shuffle
            rows = [order[j] for j, order in enumerate(orders)]
            self.draws.append(Draw(len(orders[0]) if orders else 0, rows, *_replay_rows(batch, len(rows))))
            return batch
        net.getBatch = recorded_get_batch
        try:
            yield
        finally:
            net.getBatch = get_batch

    @contextlib.contextmanager
    def playing(self):
        """Our ``ReservoirMemory.sample`` takes the recorded draws, in order."""
        tape = self

        def sample(memory, k, replacement=True):
            if not tape.draws:
                raise RuntimeError("our side drew replay samples more often than theirs")
            draw = tape.draws.popleft()
            tape.played += 1
            if memory.size != draw.pool:
                tape.findings["replay pool of a different size"] += 1
                tape.pools.append(f"{memory.size}/{draw.pool}")
            if not draw.rows:
                return None
            rows = torch.tensor(draw.rows)
            if int(rows.max()) >= memory.size:
                tape.findings["theirs replayed samples ours had not stored yet (their rows used)"] += 1
                return draw.x, draw.y, draw.t
            x, y, t = memory.x[rows], memory.y[rows], memory.t[rows]
            if not (torch.equal(x, draw.x) and torch.equal(y, draw.y) and torch.equal(t, draw.t)):
                tape.findings["replayed rows differ in content"] += 1
            return x, y, t
        original = ReservoirMemory.sample
        ReservoirMemory.sample = sample
        try:
            yield
        finally:
            ReservoirMemory.sample = original

    def notes(self) -> list[str]:
        notes = [f"{finding} at {n} of {self.played} replay draws" for finding, n in self.findings.items()]
        if self.pools:
            shown = ", ".join(self.pools[:6]) + (", ..." if len(self.pools) > 6 else "")
            notes = [n + f" (samples ours/theirs: {shown})" if n.startswith("replay pool") else n for n in notes]
        if self.draws:
            notes.append(f"theirs drew replay {len(self.draws)} more times than ours")
        return notes


class NoiseTape:
    """Meta-BGD: the eps of each of their Monte-Carlo draws, handed to our ``torch.randn`` calls."""

    def __init__(self):
        self.eps: deque[torch.Tensor] = deque()

    @contextlib.contextmanager
    def recording(self, net):
        optimizer = net.optimizer
        randomize = optimizer.randomize_weights

        def recorded(force_std=-1):
            randomize(force_std)
            if force_std < 0:   # force_std >= 0 sets the weights to the means: its eps is unused
                self.eps.extend(group["eps"].clone() for group in optimizer.param_groups)
        optimizer.randomize_weights = recorded
        try:
            yield
        finally:
            optimizer.randomize_weights = randomize

    @contextlib.contextmanager
    def playing(self, generator: torch.Generator):
        randn = torch.randn

        def played(*args, **kwargs):
            if kwargs.get("generator") is not generator:
                return randn(*args, **kwargs)
            eps = self.eps.popleft()
            shape = tuple(args[0]) if len(args) == 1 and not isinstance(args[0], int) else tuple(args)
            if tuple(eps.shape) != shape:
                raise RuntimeError(f"our noise draw of shape {shape} met their eps of shape {tuple(eps.shape)}")
            return eps.clone()
        torch.randn = played
        try:
            yield
        finally:
            torch.randn = randn


class PickTape:
    """iCaRL: their ``random.randint(0, n - 1)`` exemplar picks, handed to our ``torch.rand``."""

    def __init__(self):
        self.picks: deque[tuple[int, int]] = deque()    # (index, n)

    @contextlib.contextmanager
    def recording(self, module):
        tape, real = self, module.random

        class RecordingRandom:
            def randint(self, a, b):
                value = real.randint(a, b)
                tape.picks.append((value - a, b - a + 1))
                return value

            def __getattr__(self, name):
                return getattr(real, name)
        module.random = RecordingRandom()
        try:
            yield
        finally:
            module.random = real

    @contextlib.contextmanager
    def playing(self, generator: torch.Generator):
        rand = torch.rand

        def played(*args, **kwargs):
            if kwargs.get("generator") is not generator:
                return rand(*args, **kwargs)
            n = args[0] if isinstance(args[0], int) else int(torch.Size(args[0]).numel())
            picks = [self.picks.popleft() for _ in range(n)]
            return torch.tensor([(index + 0.5) / size for index, size in picks], dtype=kwargs.get("dtype"))
        torch.rand = played
        try:
            yield
        finally:
            torch.rand = rand


@contextlib.contextmanager
def identity_randperm():
    """Their code shuffles each glance with torch.randperm; both sides take the batch as given."""
    original = torch.randperm
    torch.randperm = lambda n, *args, **kwargs: torch.arange(n)
    try:
        yield
    finally:
        torch.randperm = original
