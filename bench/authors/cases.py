"""The Table 2 methods, ours against the authors' unmodified model files, on synthetic data shaped
as Split CIFAR-100 (3x32x32 images, 100 classes, 20 tasks of 5) and Split Tiny ImageNet (3x64x64,
200 classes, 40 tasks of 5), in float64.

Per (method, shape): ours is built from our preset (the paper's single-pass setting; IID: multi-pass),
theirs from their parser's defaults plus the method's line of their run_experiments.sh for that
dataset and setting. Ours starts from our init; the weights are copied into theirs (Meta-BGD: into
BGD's means too). Both sides then see the same calls: by default two incoming batches of task 0
(which fill the replay / episodic memory with task-0 samples) and three of task 1, each call taken
with the preset's glances (theirs loop over glances inside ``observe``, ours is called once per
glance, as our engine does). Task heads: task t owns outputs 5t..5t+4 on both sides. Synthetic
inputs are seeded N(0, 1) float32 numbers held in float64, labels balanced over the task's classes.
Shuffles of the incoming batch are the identity on both sides; replay draws, Meta-BGD's noise and
iCaRL's exemplar picks are theirs, handed to ours (``tapes.py``).

Schedules that differ from the default, and why:

* A-GEM: tasks 1 then 2. Their agem.py starts with ``current_task = 0`` and records a task only
  when ``t != current_task``, so the first task's memory never constrains anything (our agem.py's
  docstring: "fixed bug"); starting at task 1 exercises their constraint too.
* iCaRL: tasks 0 and 1 each in five batches of ``n_memories / 4`` (n_memories / 20 samples per
  class each), their ``samples_per_task`` = those samples, so their code ends each task inside its
  fifth call; our ``end_task`` follows it. Their exemplars are herded from the samples seen while
  ``examples_seen < samples_per_task`` (one batch short, a known difference named in our icarl.py);
  here the last batch is dropped from our candidates, so both herd from the same 4 batches, as many
  per class as the first task's per-class budget (with fewer candidates than the budget their code
  shrinks every class's budget to the last class's count, which a real run never reaches). Task 1
  distils task 0; its end halves task 0's exemplars; two batches of task 2 distil both.
* MER: batch size 1 (the preset and their script), three samples of task 0 and three of task 1.
* IID: five batches of 32 = 4 random tasks x 8 samples, each sample with its task id (their
  iid2.observe takes one id per sample). Their batch sampler (MultiTaskSampler) and our
  ``joint_batches`` are compared apart: batches per epoch and the make-up of each batch.
* GEM and A-GEM also run with ``n_memories=20`` on both sides (``VARIANTS``).

Besides weights and rates, each row checks what else both sides hold afterwards (the replay memory,
GEM's episodic memories, iCaRL's exemplars and their stored logits, Meta-BGD's sigmas) and names
every preset value that differs from their script line. A row whose gap exceeds 1e-6 is diagnosed
(``checked_case``): run again with our preset set to their script's values (does the preset explain
it?); then with both sides set equal after every call (does one call open a gap, or do rounding
differences grow?); and, where one call stays within 1e-6, ours against ours started one ulp apart
(how large rounding differences grow over these calls).
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from lamaml.config import resolve_config
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch
from lamaml.models import build_model

from . import theirs as authors
from .tapes import NoiseTape, PickTape, ReplayTape, identity_randperm

TABLE2 = ("iid", "er", "icarl", "gem", "a-gem", "mer", "meta-bgd", "c-maml", "la-er", "sync-la-maml", "la-maml")
SHAPES = {"cifar100": ((3, 32, 32), 100, 20), "tinyimagenet": ((3, 64, 64), 200, 40)}
SHAPE_NAMES = {"cifar100": "CIFAR", "tinyimagenet": "Tiny"}
CLASSES_PER_TASK = 5
TOLERANCE = 1e-6
LEARNED_RATES = ("la-maml", "sync-la-maml", "la-er", "meta-bgd")
LOOKAHEAD = ("la-maml", "sync-la-maml", "c-maml", "la-er", "meta-bgd")
# Variants run besides each preset case: values set on both sides, to exercise what the preset's
# values cannot (GEM / A-GEM: a memory of two batches, so a second push of the same batch at a later
# glance would show; with the preset's 10 slots and batches of 10 a re-push rewrites the same slots).
VARIANTS = {"gem": [{"n_memories": 20}], "a-gem": [{"n_memories": 20}]}
# What ours and theirs report as "the loss" of a call, where the two differ by definition.
LOSS_DEFINITIONS = {
    "icarl": "losses: theirs add the distillation term, ours log the cross-entropy alone (icarl.py docstring)",
    "la-er": "losses: theirs return the replay loss at the slow weights, ours the meta-loss",
    "mer": "losses: theirs return the last replay batch's summed loss / batches_per_example, ours the "
           "last sample's loss",
}


@dataclass
class Row:
    case: str
    ours_loss: float
    theirs_loss: float
    weights_diff: float
    rates_diff: float | None = None
    notes: list[str] = field(default_factory=list)
    verdict: str = "yes"      # within 1e-6; else what explains the gap (see checked_case)
    method: str | None = None      # the Table 2 method of a synthetic case


@dataclass
class Call:
    task: int | torch.Tensor     # one id, or one per sample (IID)
    x: torch.Tensor
    y: torch.Tensor
    ends_task: bool = False


def head_mask(n_tasks: int, n_outputs: int) -> torch.Tensor:
    mask = torch.zeros(n_tasks, n_outputs, dtype=torch.bool)
    for t in range(n_tasks):
        mask[t, t * CLASSES_PER_TASK:(t + 1) * CLASSES_PER_TASK] = True
    return mask


def task_batch(generator: torch.Generator, task: int, n: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """n seeded N(0, 1) images (float32 numbers, exact after their getBatch's .float()), labels
    balanced over the task's classes in random order."""
    x = torch.randn((n, *shape), generator=generator, dtype=torch.float32).to(torch.get_default_dtype())
    y = task * CLASSES_PER_TASK + torch.arange(n) % CLASSES_PER_TASK
    return x, y[torch.randperm(n, generator=generator)]


def schedule(method: str, config, benchmark: str) -> list[Call]:
    shape, _, n_tasks = SHAPES[benchmark]
    g = torch.Generator().manual_seed(1234)
    batch = config.batch_size
    if method == "iid":
        calls = []
        for _ in range(5):
            tasks = torch.randperm(n_tasks, generator=g)[:4]
            parts = [task_batch(g, int(t), batch // 4, shape) for t in tasks]
            ids = tasks.repeat_interleave(batch // 4)
            order = torch.randperm(batch, generator=g)
            x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            calls.append(Call(ids[order], x[order], y[order]))
        return calls
    if method == "icarl":
        big = config.params["n_memories"] // 4
        calls = []
        for task in (0, 1):
            calls += [Call(task, *task_batch(g, task, big, shape)) for _ in range(5)]
            calls[-1].ends_task = True
        return calls + [Call(2, *task_batch(g, 2, batch, shape)) for _ in range(2)]
    first, second = (1, 2) if method == "a-gem" else (0, 1)
    n_first = 3 if method == "mer" else 2
    return ([Call(first, *task_batch(g, first, batch, shape)) for _ in range(n_first)]
            + [Call(second, *task_batch(g, second, batch, shape)) for _ in range(3)])


def their_changes(method: str, config) -> dict:
    if method == "icarl":    # their end of task comes from this count (see the module docstring)
        return dict(samples_per_task=5 * (config.params["n_memories"] // 4), validation=0.0, n_epochs=1)
    return {}


def preset_differences(method: str, config, args) -> list[tuple]:
    """(name, ours, theirs) for each of our preset's values that differs from what their script
    line gives their code."""
    p = config.params
    pairs = []
    if method not in ("iid", "mer"):
        pairs.append(("glances", config.glances, args.glances))
    pairs.append(("batch_size", config.batch_size, args.batch_size))
    if method in ("er", "gem", "a-gem", "icarl", "iid", "mer"):
        pairs += [("lr", p["lr"], args.lr),
                  ("grad_clip_norm", p["grad_clip_norm"], None if method == "iid" else args.grad_clip_norm)]
    if method in ("er", "mer") + LOOKAHEAD:
        pairs += [("memories", p["memories"], args.memories),
                  ("replay_batch_size", p["replay_batch_size"], int(args.replay_batch_size))]
    if method in ("gem", "a-gem", "icarl"):
        pairs += [("n_memories", p["n_memories"], args.n_memories),
                  ("memory_strength", p["memory_strength"], args.memory_strength)]
    if method == "gem":
        pairs.append(("qp_eps", p.get("qp_eps"), 1e-3))                       # project2cone2's eps
    if method == "a-gem":
        pairs.append(("reference", p.get("reference"), "task-mean"))
    if method == "mer":
        pairs += [("beta", p["beta"], args.beta), ("gamma", p["gamma"], args.gamma),
                  ("batches_per_example", p["batches_per_example"], int(args.batches_per_example))]
    if method == "iid":
        pairs += [("tasks_per_batch", p.get("tasks_per_batch"), args.classes_per_it),
                  ("iterations", p.get("iterations"), args.iterations)]
    if method in LOOKAHEAD:
        meta_bgd = method == "meta-bgd"
        pairs += [("alpha_init", p["alpha_init"], args.alpha_init),
                  ("grad_clip_norm", p["grad_clip_norm"], args.grad_clip_norm),
                  ("inner_steps", p["inner_steps"], args.cifar_batches),
                  ("inner_clamp", p["inner_clamp"], args.grad_clip_norm),
                  ("relu_in_inner", p["relu_in_inner"], False),
                  ("second_order", p["second_order"], True if meta_bgd else args.second_order),
                  ("meta_loss", p["meta_loss"], "last" if method == "la-er" else "mean"),
                  ("snapshot_memory", p["snapshot_memory"], args.use_old_task_memory)]
        if method in ("la-maml", "sync-la-maml", "la-er"):
            pairs.append(("opt_lr", p["opt_lr"], args.opt_lr))
        if method in ("sync-la-maml", "c-maml"):
            pairs.append(("opt_wt", p["opt_wt"], args.opt_wt))
        if meta_bgd:
            pairs += [("std_init", p["std_init"], args.std_init), ("mean_eta", p["mean_eta"], args.mean_eta),
                      ("train_mc_iters", p["train_mc_iters"], args.train_mc_iters),
                      ("bgd_on_rates", p["bgd_on_rates"], True), ("clip_rates", p["clip_rates"], False)]
        else:
            expected = {"la-maml": (True, False), "sync-la-maml": (True, True), "c-maml": (False, True),
                        "la-er": (True, False)}[method]
            if (args.learn_lr, args.sync_update) != expected:
                pairs.append(("(learn_lr, sync_update)", expected, (args.learn_lr, args.sync_update)))
    return [(name, ours, theirs) for name, ours, theirs in pairs if not _same(ours, theirs)]


def format_difference(difference: tuple) -> str:
    name, ours, theirs = difference
    return f"preset {name}={ours} where their script gives {theirs}"


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    return a == b


def start_alike(theirs, ours, method: str) -> None:
    """Their network (and rates, and Meta-BGD's means) take our initial values."""
    copy_state(theirs, ours, method)
    ours.randperm = lambda n, device=None: torch.arange(n)


def copy_state(theirs, ours, method: str) -> None:
    with torch.no_grad():
        pairs = list(zip(theirs.net.parameters(), ours.model.parameters()))
        assert len(pairs) == len(list(theirs.net.parameters())) == len(list(ours.model.parameters()))
        for theirs_w, w in pairs:
            assert theirs_w.shape == w.shape, (theirs_w.shape, w.shape)
            theirs_w.copy_(w)
        if hasattr(ours, "alpha") and hasattr(theirs.net, "alpha_lr"):
            for theirs_a, a in zip(theirs.net.alpha_lr, ours.alpha.values()):
                theirs_a.copy_(a)
        if method == "meta-bgd":
            for group, std in zip(theirs.optimizer.param_groups, bgd_per_parameter(ours, ours.std)):
                group["mean_param"].copy_(group["params"][0])
                group["std_param"].copy_(std)


def bgd_per_parameter(ours, flats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Meta-BGD's flat means or sigmas (weights, then rates) as their per-parameter groups."""
    return [view for flat in flats for view in ours.state.named(flat).values()]


def largest_gap(a, b) -> float:
    return max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a, b))


# -- what else the two sides hold after the calls, compared -------------------------------------

def _their_reservoir(theirs, method: str):
    entries = theirs.M if method in ("er", "la-er", "mer") else theirs.M_new
    if not entries:
        return None
    x = torch.stack([torch.as_tensor(np.asarray(e[0])) for e in entries]).to(torch.get_default_dtype())
    y = torch.stack([torch.as_tensor(np.asarray(e[1])) for e in entries]).long().view(-1)
    t = torch.tensor([int(e[2]) for e in entries])
    return x.view(len(entries), -1), y, t


def state_notes(method: str, ours, theirs) -> list[str]:
    notes = []
    if method in ("er", "la-er", "mer") + LOOKAHEAD:
        mem = ours.memory
        held = _their_reservoir(theirs, method)
        n_theirs = 0 if held is None else len(held[1])
        if mem.size != n_theirs:
            notes.append(f"memory after the calls differs: ours {mem.size} samples, theirs {n_theirs}")
        elif n_theirs and not (torch.equal(mem.x[:n_theirs].reshape(n_theirs, -1), held[0])
                               and torch.equal(mem.y[:n_theirs], held[1]) and torch.equal(mem.t[:n_theirs], held[2])):
            notes.append("memory after the calls differs in content (same size)")
    if method in ("gem", "a-gem"):
        for t in ours.memory.tasks:
            x, y = ours.memory.get(t)
            same = (len(y) == theirs.n_memories and torch.equal(x.reshape(len(y), -1), theirs.memory_data[t])
                    and torch.equal(y, theirs.memory_labs[t]))
            if not same:
                notes.append(f"episodic memory of task {t} differs")
    if method == "icarl":
        ex = ours.exemplars
        gaps = []
        for c, their_x in sorted(theirs.mem_class_x.items()):
            rows = (ex["cls"] == c).nonzero().flatten()
            rows = rows[ex["rank"][rows].argsort()]
            if len(rows) != len(their_x) or not torch.equal(ex["x"][rows].reshape(len(rows), -1), their_x):
                notes.append(f"exemplars of class {c} differ")
                continue
            gaps.append(largest_gap([ex["logits"][rows]], [theirs.mem_class_y[c]]))
        if gaps:
            notes.append(f"exemplars: same {len(gaps)} classes, stored logits within {max(gaps):.1e}")
    if method == "meta-bgd":
        theirs_std = [group["std_param"] for group in theirs.optimizer.param_groups]
        notes.append(f"BGD sigma within {largest_gap(bgd_per_parameter(ours, ours.std), theirs_std):.1e}")
    return notes


# -- one case -------------------------------------------------------------------------------------

def gaps(method: str, ours, theirs) -> tuple[float, float | None]:
    weights = largest_gap(list(ours.model.parameters()), list(theirs.net.parameters()))
    rates = (largest_gap(list(ours.alpha.values()), list(theirs.net.alpha_lr))
             if method in LEARNED_RATES else None)
    return weights, rates


def run_case(authors_dir: str, method: str, benchmark: str, overrides: dict | None = None,
             resync: bool = False, both: dict | None = None) -> Row:
    """One (method, shape) row. ``overrides``: our config's values replaced (to test a diagnosis).
    ``resync``: their weights, rates (and BGD's means and sigmas) are set to ours again after every
    call, and the row reports the largest gap one call opens from an equal start. ``both``: values
    set on both sides (a variant of the case; the names are theirs and ours alike)."""
    setting = "multi" if method == "iid" else "single"
    config = resolve_config(benchmark, method, {**(both or {}), **(overrides or {})}, setting=setting)
    shape, n_outputs, n_tasks = SHAPES[benchmark]
    module = authors.import_module(authors_dir, authors.MODULES[method])
    args = authors.their_args(authors_dir, benchmark, setting, method,
                              **their_changes(method, config), **(both or {}))

    torch.manual_seed(0)
    random.seed(0)
    ours = build_method(method, build_model(config.model, shape, n_outputs, config.init),
                        config.method_params(), 0)
    ours.use_task_heads(head_mask(n_tasks, n_outputs))
    theirs = authors.build_net(module, shape, n_outputs, n_tasks, args)
    start_alike(theirs, ours, method)

    replay, noise, picks = ReplayTape(), NoiseTape(), PickTape()
    projections = {"ours": 0, "theirs": 0, "checks": 0, "active": 0}
    patches = _count_projections(method, module, projections)
    calls = schedule(method, config, benchmark)
    trace = []    # after each call: (weights gap, rates gap, our loss, their loss)
    current_task = -1                                 # no task yet
    try:
        for call in calls:
            task = None if ours.joint else call.task     # a joint method's batches mix tasks
            if task != current_task:
                ours.begin_task(task)
                current_task = task
            recording = _recording(method, theirs, module, replay, noise, picks)
            with authors.running_theirs(), identity_randperm(), recording:
                theirs_loss = float(theirs.observe(call.x, call.y, call.task))
            with _playing(method, ours, replay, noise, picks):
                ours_loss = float(learn_batch(ours, call.x, call.y, call.task, glances=config.glances,
                                              first_epoch=True))
            if call.ends_task:
                if method == "icarl":   # theirs herd from every batch but the last (module docstring)
                    ours.seen_x, ours.seen_y = ours.seen_x[:-1], ours.seen_y[:-1]
                ours.end_task(call.task)
            trace.append((*gaps(method, ours, theirs), ours_loss, theirs_loss))
            if resync:
                copy_state(theirs, ours, method)
    finally:
        for restore in patches:
            restore()

    weights = max(t[0] for t in trace)
    rates = None if trace[0][1] is None else max(t[1] for t in trace)
    if not resync:
        weights, rates = trace[-1][0], trace[-1][1]
    notes = [format_difference(d) for d in preset_differences(method, config, args)]
    notes += replay.notes() + state_notes(method, ours, theirs)
    if method in ("gem", "a-gem"):
        notes.append(_projection_note(method, projections))
    if method == "gem":
        notes.append(qp_note(module, config))
    if method == "iid" and not resync and not overrides:
        notes.append(sampler_note(authors_dir, ours, config, args))
    if method in LOSS_DEFINITIONS:
        notes.append(LOSS_DEFINITIONS[method])
    if method == "a-gem":
        notes.append("tasks 1 then 2 (their first task never constrains)")
    if weights > TOLERANCE or (rates or 0.0) > TOLERANCE:
        notes.append("weights gap after each call: " + ", ".join(f"{t[0]:.0e}" for t in trace)
                     + "; losses ours/theirs per call: " + ", ".join(f"{t[2]:.4g}/{t[3]:.4g}" for t in trace))
    glances = "" if method in ("iid", "mer") else f", {config.glances} glances"
    variant = "".join(f", {k}={v} on both sides" for k, v in (both or {}).items())
    case = f"{SHAPE_NAMES[benchmark]} {method}, {len(calls)} calls{glances}{variant}"
    row = Row(case, trace[-1][2], trace[-1][3], weights, rates, notes, method=method)
    state_flags = [n for n in notes if "differ" in n and ("memory" in n or "exemplars" in n)]
    replay_flags = list(replay.findings) + (["theirs drew replay more often"] if replay.draws else [])
    if replay_flags or state_flags:
        row.verdict = "update yes; " + "; ".join(replay_flags + state_flags)
    return row


def exceeds(row: Row) -> bool:
    return row.weights_diff > TOLERANCE or (row.rates_diff or 0.0) > TOLERANCE


def checked_case(authors_dir: str, method: str, benchmark: str, both: dict | None = None) -> Row:
    """``run_case``; where it misses 1e-6, two diagnoses are added to its notes: the case again with
    our config set to their script's values (does the preset explain it?), and with both sides set
    equal after every call (does one call open a real gap, or do rounding differences grow?)."""
    row = run_case(authors_dir, method, benchmark, both=both)
    if not exceeds(row):
        return row
    setting = "multi" if method == "iid" else "single"
    config = resolve_config(benchmark, method, both, setting=setting)
    args = authors.their_args(authors_dir, benchmark, setting, method, **their_changes(method, config), **(both or {}))
    overrides = {name: theirs for name, _, theirs in preset_differences(method, config, args)
                 if not name.startswith("(")}
    flags = row.verdict.removeprefix("update yes").removeprefix("yes")
    row.verdict = "no" + flags
    if overrides:
        again = run_case(authors_dir, method, benchmark, overrides, both=both)
        values = ", ".join(f"{k}={v}" for k, v in overrides.items())
        row.notes.append(f"with their values ({values}) for ours: weights {again.weights_diff:.1e}, "
                         f"rates {fmt(again.rates_diff)}")
        if not exceeds(again):
            row.verdict = f"preset ({', '.join(overrides)})" + flags
            return row
    step = run_case(authors_dir, method, benchmark, overrides or None, resync=True, both=both)
    row.notes.append(f"each call from equal weights{' and rates' if step.rates_diff is not None else ''}"
                     f"{' (their values)' if overrides else ''}: largest gap weights {step.weights_diff:.1e}, "
                     f"rates {fmt(step.rates_diff)}")
    if not exceeds(step):
        row.verdict = "each call; rounding grows over calls" + flags
        weights, rates = ours_sensitivity(method, benchmark, {**(both or {}), **overrides})
        row.notes.append(f"ours against ours started 1 ulp apart: weights {weights:.1e}, rates {fmt(rates)} "
                         f"after the same calls")
    return row


def ours_sensitivity(method: str, benchmark: str, overrides: dict) -> tuple[float, float | None]:
    """How far two runs of ours drift apart over the case's calls when their initial weights differ
    by one unit in the last place: the size rounding differences can grow to. Each run draws its
    own replay with the same seed (both memories are filled alike, so the draws agree)."""
    setting = "multi" if method == "iid" else "single"
    config = resolve_config(benchmark, method, overrides or None, setting=setting)
    shape, n_outputs, n_tasks = SHAPES[benchmark]
    runs = []
    for nudge in (0.0, 1.0):
        torch.manual_seed(0)
        ours = build_method(method, build_model(config.model, shape, n_outputs, config.init),
                            config.method_params(), 0)
        ours.use_task_heads(head_mask(n_tasks, n_outputs))
        ours.randperm = lambda n, device=None: torch.arange(n)
        with torch.no_grad():
            for w in ours.model.parameters():
                w.copy_(torch.nextafter(w, torch.full_like(w, float("inf"))) if nudge else w)
        current_task = -1
        for call in schedule(method, config, benchmark):
            task = None if ours.joint else call.task
            if task != current_task:
                ours.begin_task(task)
                current_task = task
            learn_batch(ours, call.x, call.y, call.task, glances=config.glances, first_epoch=True)
            if call.ends_task:
                ours.end_task(call.task)
        runs.append(ours)
    weights = largest_gap(list(runs[0].model.parameters()), list(runs[1].model.parameters()))
    rates = (largest_gap(list(runs[0].alpha.values()), list(runs[1].alpha.values()))
             if method in LEARNED_RATES else None)
    return weights, rates


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _recording(method, theirs, module, replay, noise, picks):
    stack = contextlib.ExitStack()
    if hasattr(theirs, "getBatch"):
        stack.enter_context(replay.recording(theirs))
    if method == "meta-bgd":
        stack.enter_context(noise.recording(theirs))
    if method == "icarl":
        stack.enter_context(picks.recording(module))
    return stack


def _playing(method, ours, replay, noise, picks):
    stack = contextlib.ExitStack()
    stack.enter_context(replay.playing())
    if method == "meta-bgd":
        stack.enter_context(noise.playing(ours.generator))
    if method == "icarl":
        stack.enter_context(picks.playing(ours.generator))
    return stack


def _count_projections(method: str, module, counts: dict) -> list:
    """Wrap both sides' projection so the note can say how often the constraint was active."""
    restores = []
    if method == "gem":
        import lamaml.methods.gem as our_gem
        ours_project, theirs_project = our_gem.project_to_cone, module.project2cone2

        def ours_counted(*args, **kwargs):
            counts["ours"] += 1
            return ours_project(*args, **kwargs)

        def theirs_counted(*args, **kwargs):
            counts["theirs"] += 1
            return theirs_project(*args, **kwargs)
        our_gem.project_to_cone, module.project2cone2 = ours_counted, theirs_counted
        restores.append(lambda: (setattr(our_gem, "project_to_cone", ours_project),
                                 setattr(module, "project2cone2", theirs_project)))
    if method == "a-gem":
        theirs_project = module.projectgrad

        def theirs_counted(gradient, memories, *args, **kwargs):
            counts["checks"] += 1
            counts["active"] += int(float(gradient.t() @ memories.mean(1)) < 0)
            return theirs_project(gradient, memories, *args, **kwargs)
        module.projectgrad = theirs_counted
        restores.append(lambda: setattr(module, "projectgrad", theirs_project))
    return restores


def sampler_note(authors_dir: str, ours, config, args) -> str:
    """IID's batches: their MultiTaskSampler (dataloaders/task_sampler.py, labels = task ids, as their
    multi_task_loader builds it) against our joint_batches, on 20 tasks of 40 samples: batches per
    epoch, and the make-up of each batch (distinct tasks, samples per task, repeated samples)."""
    if not hasattr(ours, "joint_batches"):
        return "batch sampler: ours has no joint_batches"
    sampler_module = authors.import_module(authors_dir, "dataloaders.task_sampler")
    tasks = torch.arange(20).repeat_interleave(40)
    per_task = config.batch_size // args.classes_per_it
    theirs = sampler_module.MultiTaskSampler(tasks.numpy(), args.classes_per_it, per_task, args.iterations)

    def make_up(batches) -> tuple[int, set]:
        shapes, n = set(), 0
        for rows in batches:
            rows = torch.as_tensor(rows).long()
            counts = torch.bincount(tasks[rows], minlength=20)
            shapes.add((int((counts > 0).sum()), tuple(sorted(set(counts[counts > 0].tolist()))),
                        len(rows) - len(set(rows.tolist()))))
            n += 1
        return n, shapes
    with authors.running_theirs():
        theirs_n, theirs_shapes = make_up(iter(theirs))
    ours_n, ours_shapes = make_up(ours.joint_batches(tasks, config.batch_size, torch.Generator().manual_seed(0)))

    def words(n, shapes):
        return f"{n} batches of " + " or ".join(f"{k} tasks x {'/'.join(map(str, c))} ({r} repeated)"
                                                for k, c, r in sorted(shapes))
    same = theirs_n == ours_n and theirs_shapes == ours_shapes
    return (f"batch sampler per epoch: {'both' if same else 'theirs'} {words(theirs_n, theirs_shapes)}"
            + ("" if same else f", ours {words(ours_n, ours_shapes)}"))


def qp_note(module, config) -> str:
    """GEM's QP alone, where the solution is interior (every dual variable above the margin), so
    the ridge their project2cone2 adds (eps 1e-3) matters, which one past task at the margin hides."""
    from lamaml.methods.qp import project_to_cone
    g0 = torch.Generator().manual_seed(0)
    G = torch.randn(3, 2000, generator=g0)
    g = -0.7 * G.sum(0) + torch.randn(2000, generator=g0)
    theirs = g.clone().unsqueeze(1)
    margin = config.params["memory_strength"]
    module.project2cone2(theirs, G.t().contiguous(), margin)
    eps = config.params.get("qp_eps", 0.0)
    preset = float((project_to_cone(g, G, margin, eps) - theirs[:, 0]).abs().max())
    text = f"QP alone (3 past tasks, interior solution): ours with qp_eps={eps} vs their project2cone2 {preset:.1e}"
    if eps != 1e-3:
        ridge = float((project_to_cone(g, G, margin, 1e-3) - theirs[:, 0]).abs().max())
        text += f", with their eps 1e-3 {ridge:.1e}"
    return text


def _projection_note(method: str, counts: dict) -> str:
    if method == "gem":
        return f"QP projections: ours {counts['ours']}, theirs {counts['theirs']}"
    return f"their constraint active at {counts['active']} of {counts['checks']} steps"
