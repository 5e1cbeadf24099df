"""Task streams: an indexable sequence of tasks, each built when it is used.

A task hands out its training and evaluation tensors on demand, so a 100-task stream costs the
memory of one task at a time. ``stream[:t]`` is every task up to t, as with any sequence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..errors import UserError

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Task:
    """One task: ``train()`` and ``test()`` return (inputs, labels); ``info`` says how it was made.

    ``classes`` lists the label values this task uses when the benchmark gives each task its own
    output head (task-aware evaluation); ``None`` means one shared head over all outputs.
    """

    index: int
    train: Callable[[], Tensors]
    test: Callable[[], Tensors]
    n_train: int
    info: dict[str, Any] = field(default_factory=dict)
    classes: Sequence[int] | None = None
    # Benchmarks with a validation split (the vision ones) measure RA and BTI on it; test is reported too.
    val: Callable[[], Tensors] | None = None
    # Turns a batch of stored training inputs into model inputs (e.g. uint8 -> augmented, normalized
    # floats), drawing randomness from the generator it is given; None: inputs are used as stored.
    prepare: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None


@dataclass
class TaskStream(Sequence[Task]):
    """The tasks of one benchmark in order, with what a model needs to know about them."""

    name: str
    tasks: list[Task]
    input_shape: tuple[int, ...]
    n_outputs: int

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return TaskStream(self.name, self.tasks[item], self.input_shape, self.n_outputs)
        return self.tasks[item]

    def first(self, n_tasks: int | None) -> "TaskStream":
        if n_tasks is None:
            return self
        if not 1 <= n_tasks <= len(self):
            raise UserError(f"--tasks {n_tasks}: {self.name} has {len(self)} tasks; use 1..{len(self)}")
        return self[:n_tasks]

    def head_mask(self) -> torch.Tensor | None:
        """(tasks, outputs) booleans: the outputs each task may use; None when all tasks share one head."""
        if all(task.classes is None for task in self.tasks):
            return None
        mask = torch.zeros(len(self.tasks), self.n_outputs, dtype=torch.bool)
        for t, task in enumerate(self.tasks):
            mask[t, list(task.classes) if task.classes is not None else slice(None)] = True
        return mask

    @property
    def has_validation(self) -> bool:
        return any(task.val is not None for task in self.tasks)

    def describe(self) -> list[dict[str, Any]]:
        return [dict(task=task.index, **task.info) for task in self.tasks]


def _as_tensors(data: Any, what: str) -> Tensors:
    """(x, y) tensors from a pair of tensors/arrays or from a map-style Dataset of (x, y)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = (torch.as_tensor(part) for part in data)
    else:
        try:
            items = [data[i] for i in range(len(data))]
        except TypeError:
            raise UserError(f"{what}: expected (inputs, labels) tensors or a Dataset of (x, y) pairs") from None
        if not items:
            raise UserError(f"{what} is empty")
        x = torch.stack([torch.as_tensor(item[0]) for item in items])
        y = torch.as_tensor([int(item[1]) for item in items])
    if len(x) == 0 or len(x) != len(y):
        raise UserError(f"{what}: {len(x)} inputs and {len(y)} labels; need the same, non-zero number")
    if x.is_floating_point() is False:
        x = x.float()
    return x, y.long()


def stream_from_data(tasks: Sequence[Any], name: str = "custom") -> TaskStream:
    """A stream from the user's own data: each task is ``(train, test)`` or a dict with those keys.

    ``train`` and ``test`` are ``(inputs, labels)`` tensors or Datasets yielding ``(x, y)``.
    """
    built, shapes, top_label = [], set(), 0
    for index, task in enumerate(tasks):
        train, test = (task["train"], task["test"]) if isinstance(task, dict) else task
        train_xy = _as_tensors(train, f"task {index} train")
        test_xy = _as_tensors(test, f"task {index} test")
        shapes.add(tuple(train_xy[0].shape[1:]))
        top_label = max(top_label, int(train_xy[1].max()), int(test_xy[1].max()))
        built.append(Task(index, train=lambda xy=train_xy: xy, test=lambda xy=test_xy: xy,
                          n_train=len(train_xy[1])))
    if not built:
        raise UserError("the task list is empty")
    if len(shapes) != 1:
        raise UserError(f"tasks have different input shapes: {sorted(shapes)}")
    return TaskStream(name, built, input_shape=shapes.pop(), n_outputs=top_label + 1)
