"""Task streams: an indexable sequence of tasks, each built when it is used.

A task hands out its training and evaluation tensors on demand, so a 100-task stream costs the
memory of one task at a time. ``stream[:t]`` is every task up to t, as with any sequence.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    # The first n test samples, where building them all first would waste work (MNIST transforms
    # its test images lazily): what ``first`` uses; None: ``test()`` sliced.
    test_head: Callable[[int], Tensors] | None = None

    def first(self, split: str, n: int | None = None) -> Tensors:
        """The first ``n`` samples (None: all) of the ``split``, "test" or "val"."""
        if split == "test" and n is not None and self.test_head is not None:
            return self.test_head(n)
        x, y = self.val() if split == "val" else self.test()
        return x[:n], y[:n]


SCENARIOS = ("task-il", "class-il", "domain-il")


@dataclass
class TaskStream(Sequence[Task]):
    """The tasks of one benchmark in order, with what a model needs to know about them.

    ``scenario`` (van de Ven and Tolias 2019, "Three scenarios for continual learning") says what a
    model is told about tasks: ``task-il``, each task's loss and prediction see only its own classes
    (the task id is given at test time); ``class-il``, one head over every output for all tasks, no
    task id at test time (prediction: argmax over all outputs, as Mammoth's class-il; the task id is
    still given while training, as task boundaries are); ``domain-il``, every task has the same
    classes over one shared head. None: task-il where the tasks name their classes, else domain-il.
    """

    name: str
    tasks: list[Task]
    input_shape: tuple[int, ...]
    n_outputs: int
    scenario: str | None = None

    def __post_init__(self):
        if self.scenario is None:
            self.scenario = self.scenarios[0]
        if self.scenario not in self.scenarios:
            raise UserError(f"scenario={self.scenario}: {self.name} allows {' or '.join(self.scenarios)} only"
                            + ("" if self.named_classes else " (its tasks share one head over the same classes)"))

    @property
    def named_classes(self) -> bool:
        return any(task.classes is not None for task in self.tasks)

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenarios this stream can run under: tasks that name their classes can be told apart
        by id (task-il) or not (class-il); tasks without classes share one head (domain-il)."""
        return ("task-il", "class-il") if self.named_classes else ("domain-il",)

    def with_scenario(self, scenario: str) -> "TaskStream":
        """The same tasks under another scenario (a one-line UserError where it does not fit them)."""
        return replace(self, scenario=scenario)

    @property
    def task_ids_at_test(self) -> bool:
        """Whether evaluation tells ``predict`` which task a sample comes from (not in class-il)."""
        return self.scenario != "class-il"

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return TaskStream(self.name, self.tasks[item], self.input_shape, self.n_outputs, self.scenario)
        return self.tasks[item]

    def first(self, n_tasks: int | None) -> "TaskStream":
        if n_tasks is None:
            return self
        if not 1 <= n_tasks <= len(self):
            raise UserError(f"--tasks {n_tasks}: {self.name} has {len(self)} tasks; use 1..{len(self)}")
        return self[:n_tasks]

    def head_mask(self) -> torch.Tensor | None:
        """(tasks, outputs) booleans: the outputs each task may use; None when all tasks share one head
        (class-il and domain-il)."""
        if self.scenario != "task-il":
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


def _inputs(x: torch.Tensor, what: str) -> torch.Tensor:
    """Model inputs: floats in the default dtype; uint8 taken as images and scaled to [0, 1], as the
    built-in benchmarks scale theirs. Other integer inputs are refused: pixels in 0..255 and integer
    features look alike, and guessing wrong would train silently on the wrong scale."""
    if x.dtype == torch.uint8:
        return x.to(torch.get_default_dtype()).div_(255.0)
    if x.is_floating_point():
        return x.to(torch.get_default_dtype())
    raise UserError(f"{what}: inputs of dtype {x.dtype}; give floating-point inputs (x.float()), "
                    f"or uint8 images, which are scaled to [0, 1]")


def _labels(y: torch.Tensor, what: str) -> torch.Tensor:
    """Labels as class indices: one whole number >= 0 per sample."""
    if y.ndim != 1:
        raise UserError(f"{what}: labels of shape {tuple(y.shape)}; give one class index per sample "
                        f"(a 1-D tensor; one-hot labels: y.argmax(1))")
    if y.is_complex():
        raise UserError(f"{what}: labels of dtype {y.dtype}; labels are class indices 0, 1, 2, ...")
    if y.is_floating_point():
        fractional = y[y != y.round()]          # NaN too: it differs from itself
        if len(fractional):
            raise UserError(f"{what}: label {fractional[0].item()}; labels are class indices 0, 1, 2, ...")
    if len(y) and y.min() < 0:
        raise UserError(f"{what}: label {int(y.min())}; class indices start at 0")
    return y.long()


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
        y = torch.stack([torch.as_tensor(item[1]) for item in items])
    if len(x) == 0 or len(x) != len(y):
        raise UserError(f"{what}: {len(x)} inputs and {len(y)} labels; need the same, non-zero number")
    return _inputs(x, what), _labels(y, what)


def _parts(task: Any, index: int) -> tuple[Any, Any, Sequence[int] | None]:
    """(train, test, classes) of one task as the user gave it: a ``Task`` (train and test: callables
    or data), a dict with keys train, test and optionally classes, or a (train, test) pair."""
    if isinstance(task, Task):
        data = [part() if callable(part) else part for part in (task.train, task.test)]
        return data[0], data[1], task.classes
    if isinstance(task, dict):
        unknown = set(task) - {"train", "test", "classes"}
        if unknown or not {"train", "test"} <= set(task):
            raise UserError(f"task {index}: a dict needs keys train and test (and may have classes), "
                            f"not {sorted(task)}")
        return task["train"], task["test"], task.get("classes")
    try:
        train, test = task
    except (TypeError, ValueError):
        raise UserError(f"task {index}: expected (train, test), a dict or a lamaml.Task, "
                        f"not {type(task).__name__}") from None
    return train, test, None


def _classes(classes: Sequence[int] | None, labels: torch.Tensor, what: str) -> list[int] | None:
    """The task's own classes (its head), checked to hold every one of its labels."""
    if classes is None:
        return None
    try:
        chosen = sorted({int(c) for c in classes})
    except (TypeError, ValueError):
        raise UserError(f"{what}: classes must be a list of class indices, not {classes!r}") from None
    if not chosen or chosen[0] < 0:
        raise UserError(f"{what}: classes {chosen}: need at least one, all >= 0")
    outside = sorted(set(labels.unique().tolist()) - set(chosen))
    if outside:
        raise UserError(f"{what}: labels {outside[:5]} are not among the task's classes {chosen}")
    return chosen


def stream_from_data(tasks: Sequence[Any], name: str = "custom") -> TaskStream:
    """A stream from the user's own data: each task is ``(train, test)``, a dict with keys ``train``,
    ``test`` and optionally ``classes``, or a ``Task``.

    ``train`` and ``test`` are ``(inputs, labels)`` tensors or Datasets yielding ``(x, y)``. A task
    that names its ``classes`` gets its own head (task-aware: its loss and predictions see only those
    outputs). Float inputs take the default dtype; uint8 inputs are images, scaled to [0, 1].
    """
    built, shapes, top_label = [], set(), 0
    for index, task in enumerate(tasks):
        train, test, classes = _parts(task, index)
        train_xy = _as_tensors(train, f"task {index} train")
        test_xy = _as_tensors(test, f"task {index} test")
        classes = _classes(classes, torch.cat([train_xy[1], test_xy[1]]), f"task {index}")
        shapes.add(tuple(train_xy[0].shape[1:]))
        if tuple(test_xy[0].shape[1:]) != tuple(train_xy[0].shape[1:]):
            raise UserError(f"task {index}: train inputs of shape {tuple(train_xy[0].shape[1:])} per sample "
                            f"but test inputs of shape {tuple(test_xy[0].shape[1:])}")
        top_label = max(top_label, int(train_xy[1].max()), int(test_xy[1].max()), *(classes or []))
        built.append(Task(index, train=lambda xy=train_xy: xy, test=lambda xy=test_xy: xy,
                          n_train=len(train_xy[1]), classes=classes))
    if not built:
        raise UserError("the task list is empty")
    if len(shapes) != 1:
        raise UserError(f"tasks have different input shapes: {sorted(shapes)}")
    return TaskStream(name, built, input_shape=shapes.pop(), n_outputs=top_label + 1)
