"""DER and DER++: dark experience replay (Buzzega et al., "Dark Experience for General Continual
Learning: a Strong, Simple Baseline", NeurIPS 2020, Algorithm 1).

Each glance takes one SGD step on

    DER:   L = CE(incoming) + alpha * MSE(h(x'), z')                      (x', z') ~ M
    DER++: L = CE(incoming) + alpha * MSE(h(x'), z') + beta * CE(h(x''), y'')   (x'', y'') ~ M

where z' are the logits the network gave x' when x' entered the memory M, a reservoir. The two
replay batches of DER++ are drawn independently (``replay_batch_size`` each, without replacement
within a batch, as Mammoth's ``Buffer.get_data``). After the last glance at a batch, the batch
enters the reservoir with the logits of that glance's forward pass, taken before its SGD step
(Algorithm 1 computes z before the update; Mammoth's ``der.py`` stores ``outputs.data``); stored
logits are never recomputed.

Task-aware heads: the memory keeps the full logit vector; the MSE is taken over the outputs of the
replayed sample's own task's head only, averaged over those entries. Outputs outside a task's head
take no part in its loss or its prediction, so matching them would constrain what the benchmark
never reads. On single-head MNIST every output is in the head and this is Mammoth's
``F.mse_loss`` over all logits. Both CE terms use the benchmark's head (``Method.loss``).

Differences from the authors' code (Mammoth's ``models/der.py``, ``models/derpp.py``): none in the
loss. Their runs augment the replayed inputs (``transform`` in ``get_data``) and store the
non-augmented ones; our memory stores and replays the inputs the method was handed (the vision
streams augment each incoming batch once, so its stored logits match its stored inputs).
"""
import torch
from pydantic import Field

from .base import SGDMethod, SGDParams, register
from .replay import ReservoirMemory


class DERParams(SGDParams):
    lr: float = Field(0.03, gt=0, allow_inf_nan=False,
                      description="SGD learning rate (Mammoth best_args, seq-cifar10, memory 200)")
    memories: int = Field(200, ge=0, description="replay memory slots (reservoir of inputs and logits)")
    replay_batch_size: int = Field(10, ge=0, description="samples in each replay batch (equal to the "
                                                         "incoming batch, Mammoth's default)")
    alpha: float = Field(0.3, ge=0, allow_inf_nan=False,
                         description="weight of the logit MSE (Mammoth best_args, seq-cifar10, memory 200)")
    push_every_epoch: bool = Field(True, description="re-offer samples to memory on every epoch (as ER; "
                                                     "Mammoth adds at every step) or only on the first")


class DERPlusParams(DERParams):
    alpha: float = Field(0.1, ge=0, allow_inf_nan=False,
                         description="weight of the logit MSE (Mammoth best_args, seq-cifar10, memory 200)")
    beta: float = Field(0.5, ge=0, allow_inf_nan=False,
                        description="weight of the CE on the second replay batch (same source)")


@register
class DER(SGDMethod):
    name = "der"
    summary = "DER: CE on the stream plus an MSE to the logits stored with each replayed sample"
    Params = DERParams
    state_attributes = ("memory",)
    labels_replayed = False       # DER++: a second, independent replay batch with a CE on its labels

    def __init__(self, model, params, generator):
        super().__init__(model, params, generator)
        self.memory = ReservoirMemory(params.memories, generator)
        self.last_logits: torch.Tensor | None = None     # the last glance's logits on the incoming batch

    def observe(self, x, y, task, *, first_sight):
        k = self.params.replay_batch_size
        dark = self.memory.sample(k, replacement=False)
        labelled = self.memory.sample(k, replacement=False) if self.labels_replayed else None
        inputs = [x] + [batch[0] for batch in (dark, labelled) if batch is not None]
        logits = self.model(torch.cat(inputs)).split([len(part) for part in inputs])
        self.last_logits = logits[0].detach()
        loss = self.loss(logits[0], y, task)
        if dark is not None:
            _, _, dark_tasks, stored = dark
            loss = loss + self.params.alpha * self.logit_mse(logits[1], stored, dark_tasks)
        if labelled is not None:
            _, labelled_y, labelled_tasks, _ = labelled
            loss = loss + self.params.beta * self.loss(logits[2], labelled_y, labelled_tasks)
        self.sgd_step(self.gradients(loss, self.params.grad_clip_norm))
        return loss.detach()

    def logit_mse(self, logits, stored, tasks):
        """Mean squared difference over the logits of each sample's head (all of them without heads)."""
        squared = (logits - stored).pow(2)
        if self.heads is None:
            return squared.mean()
        allowed = self.heads.index_select(0, tasks).to(squared.dtype)
        return (squared * allowed).sum() / allowed.sum()

    def end_batch(self, x, y, task, *, first_sight):
        if first_sight or self.params.push_every_epoch:
            logits = self.last_logits
            if logits is None:           # driven by hand without a glance: the logits as they are now
                with torch.no_grad():
                    logits = self.model(x)
            self.memory.add(x, y, task, logits=logits)
        self.last_logits = None


@register
class DERPlusPlus(DER):
    name = "der++"
    summary = "DER++: DER plus a CE on the labels of a second, independent replay batch"
    Params = DERPlusParams
    labels_replayed = True
