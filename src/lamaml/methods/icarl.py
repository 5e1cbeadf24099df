"""iCaRL, task-incremental variant (Rebuffi et al. 2017), as the La-MAML authors ran it (model/icarl.py).

Training, per glance: cross-entropy on the incoming batch over its task's outputs, plus for every
earlier task a distillation term: one random exemplar per class of that task, the KL divergence
between the network's softmax over the task's outputs and the one stored for that exemplar
(mean over outputs and exemplars, as ``KLDivLoss``), times ``memory_strength`` x outputs per task;
then a clipped SGD step. At the end of a task, exemplars are chosen per class by herding in the
logit space of the task's outputs, within ``n_memories / classes seen`` per class (earlier classes
keep the first ones they chose), and every exemplar's logits are stored for distillation.
Prediction: nearest class mean of the exemplars' full logit vectors (no normalisation) among the
task's classes; a task without exemplars gets uniform scores.

Differences from the authors' ``icarl.py``: the samples a task's exemplars are chosen from are the
whole first epoch (theirs stops one batch early, by counting examples against ``2250``); the end
of a task comes from the stream, not from that count. Class means are computed at the end of each
task (theirs at every prediction, with the network of that moment: the same numbers, since the
engine evaluates right after a task ends). The batch and the exemplars share one forward pass
(theirs makes two; the same numbers up to float rounding) unless the model has batch norm, whose
batch statistics would mix. The loss ``observe`` returns for logging is the
cross-entropy alone (theirs adds the distillation term). Without task heads (MNIST), a task's
classes are all outputs and exemplars are kept per (task, class). When the budget falls below one
exemplar per class, the oldest classes keep none and their tasks are scored uniformly.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field

from ..models.modes import batch_norms, eval_mode
from .base import SGDMethod, SGDParams, register


class Exemplars(NamedTuple):
    """The exemplars one distillation term reads: one per class of every earlier task."""
    x: torch.Tensor
    tasks: torch.Tensor
    columns: torch.Tensor          # each one's task's output columns
    logits: torch.Tensor           # stored at the end of its task


class ICaRLParams(SGDParams):
    lr: float = Field(0.03, gt=0, allow_inf_nan=False, description="SGD learning rate")
    grad_clip_norm: float | None = Field(5.0, gt=0, allow_inf_nan=False, description="global L2 clip")
    n_memories: int = Field(200, ge=0, description="exemplars in all, shared equally by the classes seen")
    memory_strength: float = Field(1.0, ge=0, allow_inf_nan=False, description="distillation weight")


@register
class ICaRL(SGDMethod):
    name = "icarl"
    summary = "iCaRL (task-incremental): distillation on herded exemplars, nearest-class-mean prediction"
    Params = ICaRLParams
    state_attributes = ("current_task", "seen_x", "seen_y", "exemplars", "class_means", "classes_seen")
    needs_task_id_at_test = True    # its class means are per task: class-il would need them pooled

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.current_task: int | None = None
        self.seen_x: list[torch.Tensor] = []    # the current task's first epoch: exemplar candidates
        self.seen_y: list[torch.Tensor] = []
        # All exemplars as flat tensors, grouped by (task, class) in herding order: x, stored logits,
        # task, class, and rank (position in its class's herding order).
        self.exemplars: dict[str, torch.Tensor] = {}
        self.class_means: dict[int, torch.Tensor] = {}   # task -> (its classes, outputs); NaN: no exemplar
        self.classes_seen = 0
        # Without batch norm a model's output for an image does not depend on the rest of its batch, so
        # the batch and the exemplars go through it together (up to float rounding the same numbers, at
        # half the calls); with it, two passes as the authors' code makes, so batch statistics do not mix.
        self.one_forward = not batch_norms(model)

    def task_classes(self, task: int) -> torch.Tensor:
        if self.heads is None:
            return torch.arange(self.n_outputs(), device=next(self.model.parameters()).device)
        return self.heads[task].nonzero().flatten()

    def n_outputs(self) -> int:
        return list(self.model.parameters())[-1].shape[0]

    # -- training ----------------------------------------------------------------------

    def begin_task(self, task):
        self.current_task, self.seen_x, self.seen_y = task, [], []

    def observe(self, x, y, task, *, first_sight):
        if first_sight:
            self.seen_x.append(x.detach().clone())
            self.seen_y.append(y.detach().clone())
        sample = self.distillation_sample() if self.exemplars and len(self.exemplars["x"]) else None
        if sample is None:
            logits, replayed = self.model(x), None
        elif self.one_forward:
            both = self.model(torch.cat([x, sample.x]))
            logits, replayed = both[:len(x)], both[len(x):]
        else:
            logits, replayed = self.model(x), self.model(sample.x)
        loss = self.loss(logits, y, task)
        total = loss if sample is None else loss + self.distillation_loss(replayed, sample)
        self.sgd_step(self.gradients(total, self.params.grad_clip_norm))
        return loss.detach()

    def distillation(self) -> torch.Tensor:
        """Sum over earlier tasks of the mean KL on one random exemplar per class."""
        sample = self.distillation_sample()
        return self.distillation_loss(self.model(sample.x), sample)

    def distillation_sample(self) -> Exemplars:
        """One random exemplar per class: its image, its task's output columns and its stored logits."""
        ex = self.exemplars
        group = ex["task"] * self.n_outputs() + ex["cls"]          # rows of a group are contiguous
        _, counts = torch.unique_consecutive(group, return_counts=True)
        starts = counts.cumsum(0) - counts
        pick = starts + (torch.rand(len(counts), generator=self.generator).to(counts.device) * counts).long()
        tasks = ex["task"][pick]
        if self.heads is None:
            columns = torch.arange(self.n_outputs(), device=tasks.device).expand(len(pick), -1)
        else:
            columns = self.heads.index_select(0, tasks).nonzero()[:, 1].view(len(pick), -1)
        return Exemplars(ex["x"][pick], tasks, columns, ex["logits"][pick])

    def distillation_loss(self, logits: torch.Tensor, sample: Exemplars) -> torch.Tensor:
        """The mean KL of ``logits`` (the network's, on ``sample.x``) against the stored ones, as
        ``KLDivLoss`` within each task (its classes x outputs), summed over tasks, times strength x outputs."""
        columns = sample.columns
        log_p = F.log_softmax(logits.gather(1, columns), dim=1)
        target = F.softmax(sample.logits.gather(1, columns), dim=1)
        kl = (target * (target.clamp_min(1e-12).log() - log_p)).sum(1)
        classes_of_task = torch.bincount(sample.tasks)[sample.tasks]
        per_task_mean = kl / (classes_of_task * columns.shape[1])
        return self.params.memory_strength * columns.shape[1] * per_task_mean.sum()

    # -- exemplars -----------------------------------------------------------------------

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        if not len(x):
            return x.new_zeros((0, self.n_outputs()))
        return torch.cat([self.model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def end_task(self, task: int) -> None:
        if task != self.current_task or not self.seen_x:
            return
        x, y = torch.cat(self.seen_x), torch.cat(self.seen_y)
        self.seen_x, self.seen_y = [], []
        classes = self.task_classes(task)
        earlier = self.exemplars.get("task")
        self.classes_seen += len(classes)
        per_class = self.params.n_memories // self.classes_seen
        features = self.logits(x).index_select(1, classes)
        rows, cls, rank = [], [], []
        for c in classes.tolist():
            chosen = herding(features, per_class, y == c)
            rows.append(chosen)
            cls.append(torch.full_like(chosen, c))
            rank.append(torch.arange(len(chosen), device=chosen.device))
        rows = torch.cat(rows)
        new = {"x": x[rows], "task": torch.full_like(rows, task), "cls": torch.cat(cls), "rank": torch.cat(rank)}
        if earlier is not None:       # earlier classes keep their first choices, within the new budget
            keep = (self.exemplars["rank"] < per_class) & (earlier != task)
            new = {key: torch.cat([self.exemplars[key][keep], new[key]]) for key in new}
        new["logits"] = self.logits(new["x"])                 # distillation targets: today's outputs
        self.exemplars = new
        self.update_class_means()

    def update_class_means(self) -> None:
        ex, n_out = self.exemplars, self.n_outputs()
        group = ex["task"] * n_out + ex["cls"]
        self.class_means = {}
        for t in torch.unique(ex["task"]).tolist():
            keys = t * n_out + self.task_classes(t)
            members = (group.unsqueeze(0) == keys.unsqueeze(1)).to(ex["logits"].dtype)   # (classes, N)
            counts = members.sum(1, keepdim=True)
            self.class_means[t] = (members @ ex["logits"]) / counts       # NaN where a class has none

    # -- prediction ----------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, x, task):
        with eval_mode(self.model):
            logits = self.model(x)
        scores = torch.zeros_like(logits)
        means = self.class_means.get(task)
        if means is not None:
            present = ~means.isnan().any(1)
            distance = torch.cdist(logits, means.nan_to_num(0.0)).masked_fill(~present, float("inf"))
            scores[:, self.task_classes(task)] = -distance
        return self.mask_logits(scores, task)


def herding(features: torch.Tensor, k: int, members: torch.Tensor) -> torch.Tensor:
    """Rows (of ``features``) of up to ``k`` members whose running mean best tracks the members'
    mean, chosen greedily without repeats (iCaRL's herding)."""
    rows = members.nonzero().flatten()
    k = min(k, len(rows))
    if k == 0:
        return rows[:0]
    candidates = features[rows]
    mean = candidates.mean(0)
    total = torch.zeros_like(mean)
    taken = torch.zeros(len(rows), dtype=torch.bool, device=rows.device)
    order = torch.empty(k, dtype=torch.long, device=rows.device)
    for step in range(k):
        gap = ((mean - (total + candidates) / (step + 1)) ** 2).sum(1).masked_fill(taken, float("inf"))
        best = gap.argmin()
        order[step], taken[best] = best, True
        total += candidates[best]
    return rows[order]
