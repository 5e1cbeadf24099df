"""Our MNIST baselines (Online, EWC, GEM, MER) against the MER authors' code, same weights and data.

The MNIST Table 1 baselines come from the MER repository (mattriemer/MER, its mer_examples.sh):
``model/online.py``, ``model/ewc.py``, ``model/gem.py`` and ``model/meralg1.py``. They are imported
at run time from ``--mer-dir``, unmodified (nothing of them is copied here), under a private package
name so they cannot clash with the La-MAML checkout's ``model`` package that compare_authors.py
imports. Everything runs in float64. Both sides start from our initial weights (the preset's
Xavier-uniform init, copied into their ``common.MLP``), see the same real MNIST Rotations training
samples one at a time (batch size 1, as mer_examples.sh) in the stream's order, task after task, and
we then compare every weight (largest absolute difference) and the cross-entropy of both final
networks on 100 test images of each task seen.

    python bench/compare_mer.py --mer-dir /tmp/MER

Their hyperparameters are main.py's argparse defaults plus mer_examples.sh's MNIST Rotations line
for the method (GEM and MER: the 200-memory lines); a preset value that differs from it is named in
the note column.

What their code needs from outside to run here, none of it touching what it computes:

* float64: GEM allocates its episodic memory as ``torch.FloatTensor`` and MER's ``getBatch`` casts
  with ``.float()``; both are float32 whatever the default dtype. GEM's ``memory_data`` is replaced
  after construction by a float64 tensor of the same shape (zeros instead of uninitialised memory),
  and MER's ``Variable`` (a no-op since torch 0.4) is replaced by one whose ``.float()`` keeps the
  default dtype.
* ``quadprog`` (GEM's solver) must be installed: ``pip install quadprog``.

How the randomness is aligned (MER is the only method that draws any): MER's ``getBatch`` draws
each replay sample as ``order[j]`` after a ``random.shuffle(order)``, and its reservoir replaces
slot ``random.randint(0, age)`` once the memory is full. For every incoming example we first run
our ``observe``, recording which memory slots our ``ReservoirMemory.sample`` returned (found by
matching the returned rows against the memory) and which slot ``add`` overwrote (found by
comparing the memory before and after); their module's ``shuffle`` is then replaced by a function
that fills ``order`` with the slot we drew, and its ``random`` by one whose ``randint`` returns the
slot we overwrote (or ``memories``, meaning "keep none", when ours kept none). Slot numbers agree on
both sides because both fill slots 0, 1, ... in order before replacing. Every recorded draw must be
consumed by their side; the note says so if not.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from argparse import Namespace
from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F

from lamaml.config import resolve_config
from lamaml.data import build_benchmark, resolve_data_dir
from lamaml.engine import build_method
from lamaml.engine.loop import learn_batch
from lamaml.errors import UserError
from lamaml.models import build_model

BENCHMARK = "mnist-rotations"
N_INPUTS, N_OUTPUTS, N_TASKS = 784, 10, 20
EVAL_PER_TASK = 100
MER_FILES = {"online": "model/online.py", "ewc": "model/ewc.py", "gem": "model/gem.py", "mer": "model/meralg1.py"}
PACKAGE = "_mer_authors_model"   # not "model": compare_authors.py imports La-MAML's package of that name

# MER main.py's argparse defaults (after its own cuda/finetune conversion to booleans) and the
# options every MNIST Rotations line of mer_examples.sh shares.
MAIN_DEFAULTS = dict(model="single", n_hiddens=100, n_layers=2, finetune=True, n_epochs=1, batch_size=1, lr=1e-3,
                     n_memories=0, memory_strength=0.0, memories=5120, gamma=1.0, batches_per_example=1.0, s=1.0,
                     replay_batch_size=20.0, beta=1.0, cuda=False, seed=0, log_every=100, save_path="results/",
                     data_path="data/", data_file="mnist_permutations.pt", samples_per_task=-1, shuffle_tasks="no")
ROTATIONS = dict(n_layers=2, n_hiddens=100, data_path="data/", save_path="results/", batch_size=1, log_every=100,
                 samples_per_task=1000, data_file="mnist_rotations.pt", cuda=False)
# mer_examples.sh, MNIST Rotations: the method's own options (GEM and MER: "With 200 Memories").
SCRIPT = {
    "online": dict(model="online", lr=0.0003),
    "ewc": dict(model="ewc", lr=0.001, n_memories=10, memory_strength=100.0),
    "gem": dict(model="gem", lr=0.01, n_memories=10, memory_strength=0.0),
    "mer": dict(model="meralg1", lr=0.1, beta=0.01, gamma=1.0, memories=200, replay_batch_size=10,
                batches_per_example=5),
}

# (method, tasks, updates per task, changes to both sides' settings). Task counts make each
# method's memory of earlier tasks act: EWC sums two tasks' penalties, GEM projects against two
# tasks' gradients, and 25 updates per task leave GEM's ring counter mid-buffer at each task switch
# (theirs runs on across tasks, ours restarts: the same last 10 samples, in other slots). Beyond the
# Rotations lines: a GEM margin (the Permutations / Many Permutations lines use 1.0 and 0.1), a MER
# memory small enough for the reservoir to replace samples (with the authors' randint(0, age)), and
# a MER across-batch rate gamma below 1 (every script line uses 1.0, where that step is the identity).
CASES = [
    ("online", 2, 40, {}),
    ("ewc", 3, 30, {}),
    ("gem", 2, 40, {}),
    ("gem", 3, 25, {}),
    ("gem", 3, 25, {"memory_strength": 0.5}),
    ("mer", 2, 40, {}),
    ("mer", 2, 40, {"memories": 20, "reservoir_off_by_one": True}),
    ("mer", 2, 20, {"gamma": 0.5}),
]


def import_mer(mer_dir: str | Path) -> dict[str, types.ModuleType]:
    """Their four model files as modules of a private package rooted at ``mer_dir/model``."""
    root = Path(mer_dir)
    missing = [name for name in ("model/common.py", *MER_FILES.values()) if not (root / name).is_file()]
    if missing:
        raise UserError(f"--mer-dir {mer_dir}: not a checkout of mattriemer/MER (missing {', '.join(missing)})")
    folder = str((root / "model").resolve())
    package = sys.modules.get(PACKAGE)
    if package is None or list(package.__path__) != [folder]:
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        package = types.ModuleType(PACKAGE)
        package.__path__ = [folder]
        sys.modules[PACKAGE] = package
    modules = {}
    for method, path in MER_FILES.items():
        try:
            modules[method] = importlib.import_module(f"{PACKAGE}.{Path(path).stem}")
        except ModuleNotFoundError as error:
            if error.name != "quadprog":
                raise
            raise UserError("the MER code's GEM needs quadprog: pip install quadprog") from None
    return modules


def their_args(method: str, changes: dict) -> Namespace:
    values = {**MAIN_DEFAULTS, **ROTATIONS, **SCRIPT[method]}
    values.update({k: v for k, v in changes.items() if k in values})
    return Namespace(**values)


def preset_differences(config, args: Namespace) -> list[str]:
    """Where our preset's settings are not the ones their command line gives."""
    params = config.method_params()
    found = [f"{name}: ours {getattr(params, name)}, theirs {getattr(args, name)}"
             for name in SCRIPT[config.method] if name != "model" and getattr(params, name) != getattr(args, name)]
    if config.batch_size != args.batch_size:
        found.append(f"batch_size: ours {config.batch_size}, theirs {args.batch_size}")
    if config.init != "xavier-uniform":
        found.append(f"init: ours {config.init}, theirs Xavier-uniform (common.py)")
    return found


@contextlib.contextmanager
def patched(module: types.ModuleType, **attributes):
    """Set module globals for the duration, then put the originals back."""
    saved = {name: getattr(module, name) for name in attributes}
    for name, value in attributes.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


class KeepDefaultDtype(torch.Tensor):
    """What MER's ``Variable`` returns here: ``.float()`` keeps the default dtype (float64) instead
    of casting to float32, so their replay samples meet the float64 network; ``.long()`` as usual."""

    def float(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).to(torch.get_default_dtype())

    def long(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).long()


class ReplayAlignment:
    """Records the memory slots our MER draws and overwrites, and replays them to theirs (see the
    module docstring). Wraps the ``sample`` and ``add`` of our method's ``ReservoirMemory``."""

    def __init__(self, memory):
        self.memory = memory
        self.drawn: deque[int] = deque()
        self.replaced: deque[int] = deque()
        self.replays = self.replacements = 0
        sample, add = memory.sample, memory.add

        def recording_sample(k, *args, **kwargs):
            batch = sample(k, *args, **kwargs)
            if batch is not None:
                self.drawn.extend(self.slot_of(x, y, t) for x, y, t in zip(*batch))
                self.replays += len(batch[1])
            return batch

        def recording_add(x, y, task):
            full = memory.size == memory.capacity
            before = (memory.x.clone(), memory.y.clone(), memory.t.clone()) if full else None
            add(x, y, task)
            if full:
                changed = ((memory.x != before[0]).flatten(1).any(1) | (memory.y != before[1])
                           | (memory.t != before[2])).nonzero().flatten().tolist()
                if len(changed) > 1:
                    raise AssertionError(f"one sample added, {len(changed)} slots changed")
                self.replaced.append(changed[0] if changed else memory.capacity)
                self.replacements += bool(changed)

        memory.sample, memory.add = recording_sample, recording_add

    def slot_of(self, x, y, t) -> int:
        n = self.memory.size
        match = ((self.memory.x[:n] == x).flatten(1).all(1) & (self.memory.y[:n] == y)
                 & (self.memory.t[:n] == t)).nonzero()
        return int(match[0, 0])

    def shuffle(self, order: list) -> None:
        """Stands in for ``random.shuffle`` in meralg1.getBatch, which then reads ``order[j]``."""
        order[:] = [self.drawn.popleft()] * len(order)

    def randint(self, low: int, high: int) -> int:
        """Stands in for ``random.randint(0, age)`` in meralg1's reservoir update."""
        return self.replaced.popleft()


def held_out_loss(net, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y))


def run_case(modules, stream, method: str, n_tasks: int, updates: int, changes: dict) -> dict:
    config = resolve_config(BENCHMARK, method, changes)
    args = their_args(method, changes)
    notes = [f"preset differs from mer_examples.sh: {d}" for d in preset_differences(config, args)]
    torch.manual_seed(0)
    ours = build_method(method, build_model("mlp", (N_INPUTS,), N_OUTPUTS, config.init), config.method_params(), 0)
    theirs = modules[method].Net(N_INPUTS, N_OUTPUTS, N_TASKS, args)
    with torch.no_grad():
        for their_weight, weight in zip(theirs.net.parameters(), ours.model.parameters(), strict=True):
            their_weight.copy_(weight)

    module, patches, projections = modules[method], {}, [0]
    if method == "gem":
        theirs.memory_data = torch.zeros(theirs.memory_data.shape)        # float64, was torch.FloatTensor
        project = module.project2cone2

        def counting_project(*args, **kwargs):
            projections[0] += 1
            return project(*args, **kwargs)
        patches["project2cone2"] = counting_project
    alignment = None
    if method == "mer":
        alignment = ReplayAlignment(ours.memory)
        patches.update(shuffle=alignment.shuffle, random=types.SimpleNamespace(randint=alignment.randint),
                       Variable=lambda tensor: tensor.as_subclass(KeepDefaultDtype))

    eval_x, eval_y = [], []
    with patched(module, **patches):
        for task in range(n_tasks):
            x, y = stream[task].train()
            x = x.to(torch.get_default_dtype())
            ours.begin_task(task)
            for i in range(updates):
                learn_batch(ours, x[i:i + 1].clone(), y[i:i + 1].clone(), task, glances=1, first_epoch=True)
                theirs.observe(x[i:i + 1].clone(), task, y[i:i + 1].clone())
            ours.end_task(task)
            tx, ty = stream[task].test()
            eval_x.append(tx[:EVAL_PER_TASK].to(torch.get_default_dtype()))
            eval_y.append(ty[:EVAL_PER_TASK])
    if method == "gem":
        notes.append(f"their code projected {projections[0]} of {(n_tasks - 1) * updates} gradients")
    if alignment is not None:
        notes.append(f"memory {ours.memory.size}/{ours.memory.capacity} after {ours.memory.n_seen} samples, "
                     f"{alignment.replacements} replaced by the reservoir, {alignment.replays} replay draws")
        if alignment.drawn or alignment.replaced:
            notes.append(f"NOT ALIGNED: {len(alignment.drawn)} replay draws and {len(alignment.replaced)} "
                         f"reservoir draws of ours were not consumed by theirs")
    ex, ey = torch.cat(eval_x), torch.cat(eval_y)
    weights_diff = max((a - b).abs().max().item()
                       for a, b in zip(ours.model.parameters(), theirs.net.parameters(), strict=True))
    extra = ", ".join(f"{k} {v}" for k, v in changes.items() if k != "reservoir_off_by_one")
    case = f"{BENCHMARK} {method}{', ' + extra if extra else ''}, {n_tasks} tasks x {updates} updates"
    return {"case": case, "ours_loss": held_out_loss(ours.model, ex, ey),
            "theirs_loss": held_out_loss(theirs.net, ex, ey), "weights_diff": weights_diff, "note": "; ".join(notes)}


def mnist_baseline_rows(mer_dir: str, data_dir) -> list[dict]:
    """One row per case: case, ours_loss, theirs_loss (cross-entropy of each final network on 100
    test images of every task seen), weights_diff (largest absolute weight difference) and note."""
    modules = import_mer(mer_dir)
    stream = build_benchmark(BENCHMARK, resolve_data_dir(data_dir), 0, None, False)
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return [run_case(modules, stream, *case) for case in CASES]
    finally:
        torch.set_default_dtype(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mer-dir", required=True, help="a checkout of mattriemer/MER")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        rows = mnist_baseline_rows(args.mer_dir, args.data_dir)
    except UserError as error:
        print(f"lamaml: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    print("| case | loss ours | loss MER code | weights: largest difference | note |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['ours_loss']:.10g} | {row['theirs_loss']:.10g} | {row['weights_diff']:.1e} "
              f"| {row['note']} |")


if __name__ == "__main__":
    main()
