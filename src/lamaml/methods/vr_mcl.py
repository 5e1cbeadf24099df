"""VR-MCL: Variance-Reduced Meta-Continual Learning (Wu, Huang, Wang, Meng & Wei, "Meta Continual
Learning Revisited: Implicitly Enhancing Online Hessian Approximation via Variance Reduction",
ICLR 2024). Authors' code: WuYichen-97/Meta-Continual-Learning-Revisited-ICLR2024, models/vrmcl.py
(on Mammoth), with their README's command; the algorithm below is what that code computes.

La-MAML's look-ahead, taken twice per meta-update on the same inner chunks and meta-batch B_t: from
the weights theta_t and from the previous weights theta_{t-1}, both with the current rates alpha_t.
With g, a the weights' and rates' meta-gradients and C the global-norm clip (``grad_clip_norm``):

    g_t,  a_t  = meta-gradients of L(theta_t;     alpha_t, B_t)
    g'_t, a'_t = meta-gradients of L(theta_{t-1}; alpha_t, B_t)
    alpha     <- alpha - opt_lr * C(C(a_t) + a'_t)          (their --lr; both look-aheads reach alpha)
    m_t        = C(g_t) + r * (m_{t-1} - C(g'_t))           (STORM; m_t = C(g_t) at the first step)
    theta     <- theta - opt_wt * m_t                        (their --s_lr, r their --s_momentum)
    theta_{t-1} <- theta_t before the step; at every task start theta_{t-1} <- theta

The inner steps use raw alpha and clamp each inner gradient element-wise at ``grad_clip_norm``; the
meta-loss is the mean over the inner steps of the meta-batch loss, second order. One meta-update
costs about two of La-MAML's. It is the shared core's ``variance_reduction`` option
(lookahead/update.py, ``variance_reduced``) with Sync La-MAML's scalar weight step.

Their README's values and our names: --lr 0.25 -> opt_lr (the rates' SGD rate), --alpha_init 0.1 ->
alpha_init, --s_lr 0.35 -> opt_wt, --s_momentum 0.15 -> vr_momentum, --batch_size 32 (the run's
batch_size), --replay_batch_size 32 -> replay_batch_size, --inner_batch_size 8 -> inner_steps 4
(chunks of ceil(32 / 4) = 8), --second_order -> second_order, --grad_clip_norm 1 -> grad_clip_norm
and inner_clamp, --buffer_size 1000 -> memories, --meta_update_per_batch 1 -> glances,
--asyn_update -> the STORM step above (their flag's name; the step is by the scalar s_lr, not by
relu(alpha) as in La-MAML).

Deliberate differences from the authors' code:

* meta-loss: ours is the family's, every row weighted alike, over each sample's own task head where
  the benchmark has them (else the shared head). Theirs (take_multitask_loss) is class-incremental:
  the first 32 rows (a hard-coded batch size) over the current task's and all later outputs, the
  replayed rows over every output seen so far and weighted 1/2, the sum divided by all rows. The
  inner loss is the same (the current task's outputs).
* memory: ours is uniform reservoir sampling (theirs draws randint(0, n) inclusive, as La-MAML's:
  ``reservoir_off_by_one`` restores it); replay draws without replacement as theirs. Their replayed
  images are augmented anew at each draw (Mammoth keeps them unaugmented); ours are replayed as
  stored. A batch enters memory after its last glance, in its first epoch only, as theirs; in the
  order the last glance shuffled it (theirs: as it arrived).
* their released backbone is built with ``eman=False``, which has no second network for theta_{t-1}
  (``get_fast_weight('ema')`` fails); the code runs as intended with ``eman=True``, which
  bench/compare_vrmcl.py uses. Their backbone's batch-norm statistics are refreshed by plain forwards
  of the meta-batch at the first inner step; ours by whatever the model's modules do in training mode.
* ``rate_gradient="current"`` lets the rates follow a_t alone (one clip), an option; the default is
  their code's sum.

The two look-aheads are independent, so on a CPU with two or more training threads they run side by
side, each on a worker thread with its share of the threads (``parallel_lookaheads``, the default;
the learner's ``both_lookaheads``). With one thread each, a run gives a one-thread run's numbers to
the bit.
"""
from typing import Literal

from pydantic import Field

from .base import COMPUTATION_ONLY, register
from .lookahead import LookaheadMetaLearner, LookaheadOptions, LookaheadParams


class VRMCLParams(LookaheadParams):
    memories: int = Field(1000, ge=0, description="replay memory slots (their --buffer_size)")
    replay_batch_size: int = Field(32, ge=0, description="replay samples in each meta-batch")
    alpha_init: float = Field(0.1, ge=0, allow_inf_nan=False, description="initial inner rates (--alpha_init)")
    opt_lr: float = Field(0.25, ge=0, allow_inf_nan=False, description="eta: SGD rate of the rates alpha (their --lr)")
    opt_wt: float = Field(0.35, ge=0, allow_inf_nan=False,
                          description="beta: the weights' step along the momentum (their --s_lr)")
    vr_momentum: float = Field(0.15, ge=0, allow_inf_nan=False,
                               description="r: weight of m_{t-1} - g'_t in the momentum (their --s_momentum)")
    rate_gradient: Literal["both", "current"] = Field(
        "both", description="the rates follow clip(a_t) + a'_t, both look-aheads' (authors' code), or a_t alone")
    grad_clip_norm: float | None = Field(1.0, gt=0, allow_inf_nan=False,
                                         description="global L2 clip of each meta-gradient (their --grad_clip_norm)")
    inner_clamp: float | None = Field(1.0, gt=0, allow_inf_nan=False,
                                      description="element-wise inner clamp (theirs: at --grad_clip_norm)")
    relu_in_inner: bool = Field(False, description="inner step uses relu(alpha) (theirs: raw alpha)")
    second_order: bool = Field(True, description="back-propagate through the inner gradients (--second_order)")
    inner_steps: int | None = Field(4, ge=1, description="inner chunks: their --inner_batch_size 8 of a batch of 32")
    replay_with_replacement: bool = Field(False, description="Mammoth's buffer draws without replacement")
    meta_loss: Literal["mean", "last"] = Field("mean", description="mean over inner steps (authors' code)")
    parallel_lookaheads: bool = Field(True, description="on a CPU with two or more training threads, the two "
                                      "look-aheads side by side, each on its share of the threads (the numbers of a "
                                      "one-thread run); false: one after the other on all of them",
                                      json_schema_extra=COMPUTATION_ONLY)


@register
class VRMCL(LookaheadMetaLearner):
    name = "vr-mcl"
    summary = "VR-MCL: La-MAML's look-ahead with a momentum variance-reduced (STORM) meta-gradient"
    Params = VRMCLParams
    options = LookaheadOptions(learn_lr=True, sync_update=True, variance_reduction=True,
                               push_after_last_glance=True)
    state_attributes = ("rates", "memory", "current_task", "previous_weights", "momentum")

    def end_batch(self, x, y, task, *, first_sight):
        if first_sight:    # as theirs: only while observed_batch <= batches per task (the first epoch)
            super().end_batch(x, y, task, first_sight=first_sight)
