"""The contract every method keeps, and the registry the engine builds methods from.

A method sees one incoming batch at a time through ``observe`` and answers ``predict``; it never
prints, never touches files, and draws randomness only from the generator it is handed.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..models.modes import eval_mode


class MethodParams(BaseModel):
    """Hyperparameters of a method; each method declares its own subclass. A field declared with
    ``json_schema_extra=COMPUTATION_ONLY`` changes how a result is computed, never the result (beyond
    float rounding); reports do not count it as part of a run's protocol."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def computation_only(cls) -> set[str]:
        return {name for name, field in cls.model_fields.items()
                if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("computation_only")}


COMPUTATION_ONLY = {"computation_only": True}


class Method:
    """Base class: holds the network, the generator and the loss. Subclasses write ``observe``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    joint: ClassVar[bool] = False      # True: trained once on all tasks together (the IID oracle)
    state_attributes: ClassVar[tuple[str, ...]] = ()   # what a checkpoint keeps besides the weights
    # True: ``predict`` cannot do without the task id (refused in class-il, which evaluates with task None)
    needs_task_id_at_test: ClassVar[bool] = False

    # False: the method runs the model on single samples or under vmap (look-ahead inner steps, MER's
    # per-sample steps, GEM's per-task gradients), where BatchNorm has no batch statistics to use
    supports_batchnorm: ClassVar[bool] = True

    heads: torch.Tensor | None = None   # (tasks, outputs) bool: each task's slice of the shared head

    def __init__(self, model: nn.Module, params: MethodParams, generator: torch.Generator):
        self.model = model
        self.params = params
        self.generator = generator

    def use_task_heads(self, mask: torch.Tensor | None) -> None:
        """Task-aware heads: task t's loss and prediction see only the outputs ``mask[t]`` allows."""
        self.heads = None if mask is None else mask.to(next(self.model.parameters()).device)

    def mask_logits(self, logits: torch.Tensor, task: int | torch.Tensor | None) -> torch.Tensor:
        """Logits outside the task's head set to -inf: a 5-way softmax over one shared layer, for a
        batch of one task or of many (one id per sample), as one tensor operation."""
        if self.heads is None or task is None:
            return logits
        if isinstance(task, int):
            allowed = self.heads[task]
        else:   # index_select, not indexing: it also works under vmap (GEM's per-task gradients)
            task = torch.as_tensor(task, device=self.heads.device)
            allowed = self.heads.index_select(0, task.reshape(-1)).reshape(*task.shape, -1)
        return logits.masked_fill(~allowed, float("-inf"))

    # -- the engine's contract: the loop owns tasks, epochs and glances and calls, in order, -----
    #    begin_task(t); for each incoming batch: observe(...) once per glance, then end_batch(...);
    #    end_task(t). ``first_sight``: the first glance of the first epoch at this batch.

    def begin_task(self, task: int) -> None:
        """Before the first batch of a task."""

    def observe(self, x: torch.Tensor, y: torch.Tensor, task: int, *, first_sight: bool) -> torch.Tensor:
        """Learn from one glance at an incoming batch; return the loss, detached."""
        raise NotImplementedError

    def end_batch(self, x: torch.Tensor, y: torch.Tensor, task: int, *, first_sight: bool) -> None:
        """After the last glance at a batch in an epoch (where replay memories take it in);
        ``first_sight``: this was the batch's first epoch."""

    def end_task(self, task: int) -> None:
        """After the last batch of a task, before it is evaluated (EWC's Fisher, iCaRL's exemplars)."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor, task: int | None) -> torch.Tensor:
        """Scores over all outputs, in eval mode (each module's mode restored after); ``task`` None: no
        task id (class-il), argmax over every output."""
        with eval_mode(self.model):
            return self.mask_logits(self.model(x), task)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy; with task heads, over each sample's own task's outputs (``task``: one
        id, or one per sample), which equals the authors' CE on the 5-logit slice."""
        return F.cross_entropy(self.mask_logits(logits, task), y)

    def gradients(self, loss: torch.Tensor, clip: float | None = None) -> list[torch.Tensor]:
        """Gradients of ``loss`` w.r.t. the model's parameters, clipped by global norm if asked."""
        grads = list(torch.autograd.grad(loss, list(self.model.parameters())))
        if clip is not None:
            clip_global_norm_(grads, clip)
        return grads

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, generator, and ``state_attributes``.

        Only tensors, numbers, strings and containers of them, so a checkpoint loads with
        ``torch.load(weights_only=True)``: nothing in it can run code.
        """
        state = {"model": self.model.state_dict(), "generator": self.generator.get_state()}
        for name in self.state_attributes:
            state[name] = export_state(getattr(self, name))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checkpoints load on the CPU; what they hold goes back to the model's device (not the
        generator, whose state is a CPU byte tensor)."""
        self.model.load_state_dict(state["model"])
        self.generator.set_state(state["generator"])
        device = next(self.model.parameters()).device
        for name in self.state_attributes:
            setattr(self, name, import_state(getattr(self, name), to_device(state[name], device)))

    def randperm(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator).to(device, non_blocking=True)


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device`` (containers rebuilt, the rest as is)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def export_state(value: Any) -> Any:
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: export_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [export_state(v) for v in value]
    return value


def import_state(current: Any, saved: Any) -> Any:
    """Restore ``saved`` into ``current``, in place where possible so aliases stay valid."""
    if hasattr(current, "load_state_dict"):
        current.load_state_dict(saved)
        return current
    if isinstance(current, torch.Tensor) and isinstance(saved, torch.Tensor) and current.shape == saved.shape:
        with torch.no_grad():
            current.copy_(saved)
        return current
    if isinstance(current, dict) and isinstance(saved, dict):
        return {k: import_state(current.get(k), v) for k, v in saved.items()}
    if isinstance(saved, list) and isinstance(current, (list, tuple)) and len(current) == len(saved):
        restored = [import_state(c, v) for c, v in zip(current, saved)]
        return tuple(restored) if isinstance(current, tuple) else restored
    if isinstance(saved, list):
        return [import_state(None, v) for v in saved]
    return saved


def clip_factor(total: torch.Tensor, max_norm: float) -> torch.Tensor:
    """What a global-norm clip multiplies every gradient by, ``torch.nn.utils.clip_grad_norm_``'s
    min(1, max_norm / (norm + 1e-6)): exactly 1 where the norm is within ``max_norm``."""
    return (max_norm / (total + 1e-6)).clamp(max=1.0)


def clip_global_norm_(tensors: list[torch.Tensor], max_norm: float | None) -> None:
    """In place, as ``torch.nn.utils.clip_grad_norm_`` (same 1e-6 guard). On an accelerator without
    host syncs; on the CPU the multiply is skipped where the scale is exactly 1 (the norm within
    ``max_norm``), which leaves every number as it was and saves a pass over every gradient (MER
    takes hundreds of clipped single-sample steps per example)."""
    if max_norm is None or not tensors:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))
    scale = clip_factor(total, max_norm)
    if scale.device.type != "cpu" or scale < 1.0:
        torch._foreach_mul_(tensors, scale)


class SGDParams(MethodParams):
    lr: float = Field(0.01, gt=0, allow_inf_nan=False, description="SGD learning rate")
    grad_clip_norm: float | None = Field(None, gt=0, allow_inf_nan=False,
                                         description="global L2 clip of each gradient; null disables")


class SGDMethod(Method):
    """A method whose weights take plain SGD steps: Online, EWC, GEM, A-GEM, ER, MER."""

    Params = SGDParams

    def sgd_step(self, grads: list[torch.Tensor], lr: float | None = None) -> None:
        with torch.no_grad():
            torch._foreach_add_(list(self.model.parameters()), grads, alpha=-(lr or self.params.lr))


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls
