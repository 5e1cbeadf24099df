"""VR-MCL, ours (methods/vr_mcl.py) against the authors' models/vrmcl.py: same weights, data and replay draws, float64.

Needs a copy of WuYichen-97/Meta-Continual-Learning-Revisited-ICLR2024 (not shipped here: it has no
licence), e.g. ``git clone`` or ``git archive HEAD | tar -x -C /tmp/vrmcl``:

    python bench/compare_vrmcl.py --authors-dir /tmp/vrmcl [--calls 3] [--glances 1,2]
        [--results docs/results/authors-code-check.md]

Imported from it unmodified: ``models/vrmcl.py``, ``models/utils/continual_model.py``,
``utils/buffer.py``, ``utils/conf.py``, ``backbone/__init__.py``, ``backbone/ResNet18_MAML.py``.
Stubbed, being off the update path: ``torchvision`` where it is not installed (their buffer and
model base name it in type hints only), and the packages ``datasets`` and ``models`` themselves,
whose ``__init__`` imports every dataset and model by listing ``../datasets`` from the working
directory (``vrmcl.py`` reads ``DATASET_NAMES`` and ``get_all_models`` only in its unused parser).
Their network is their reduced ResNet-18 (``resnet18_maml``, nf 20) built with ``eman=True``: the
released default ``eman=False`` has no second network for the previous weights and their
``begin_task`` fails on it. Our side trains a deep copy of their main network (the same function of
the same weights; their ``functional_forward`` and the module's forward agree) with our VR-MCL.

Both sides: their README's values (lr 0.25, alpha_init 0.1, s_lr 0.35, s_momentum 0.15, clip 1,
batch 32, replay batch 32, inner batch 8 = 4 inner steps, second order, asynchronous update), one
head over every output (their task id 0 throughout; their class-incremental slices then cover every
output), a memory that never fills. Aligned: ``torch.randperm`` is the identity on both sides; their
``observe`` reads the batch through ``torch.tensor(..., dtype=torch.float)``, which is float64 while
it runs (the images are float32 numbers, so their float32 buffer keeps them exactly); their replay
draws (``np.random.choice`` in their ``Buffer.get_data``) are recorded and our memory returns its
rows at the same slots; our meta-loss weights the replayed rows 1/2 as their ``take_multitask_loss``
does (a loss override in this script, the only change to our method; methods/vr_mcl.py says why
ours does not). Their ``begin_task`` and ours at each task start. After every call: the largest
difference of the weights, the rates, the momentum and the previous weights; with ``--equal-start``
also every call from their state (ours set to their weights, rates, momentum and previous weights),
which separates one call's rounding from its growth over calls. Calls in a row also run a second
copy of ours from weights 1 ulp away (the same batches and draws): the growth rounding alone has.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib
import io
import sys
import time
import types
import warnings
from argparse import Namespace
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from authors.tapes import identity_randperm                   # noqa: E402
from lamaml.engine.loop import learn_batch                    # noqa: E402
from lamaml.methods.replay import ReservoirMemory             # noqa: E402
from lamaml.methods.vr_mcl import VRMCL                       # noqa: E402

REQUIRED = ("models/vrmcl.py", "models/utils/continual_model.py", "utils/buffer.py", "utils/conf.py",
            "backbone/__init__.py", "backbone/ResNet18_MAML.py")
README = dict(lr=0.25, alpha_initial=0.1, s_lr=0.35, s_momentum=0.15, grad_clip_norm=1.0, batch_size=32,
              replay_batch_size=32, inner_batch_size=8, second_order=True, asyn_update=True, buffer_size=1000)
SECTION = "## VR-MCL against the authors' code"
EXPLAINED = ("Each call from an equal start (ours set to their weights, rates, momentum and previous weights "
             "before it) shows one call's difference: rounding. Calls in a row let it grow, and it grows as fast "
             "as between two copies of ours started 1 ulp apart: the second-order look-ahead through this "
             "network's batch norm over inner chunks of 8, with the README's rates, amplifies any rounding by "
             "orders of magnitude per update, so the in-a-row gap stays within 1e-6 only for the first few updates.")


def import_theirs(authors_dir: str):
    missing = [f for f in REQUIRED if not (Path(authors_dir) / f).is_file()]
    if missing:
        print(f"lamaml: --authors-dir {authors_dir}: not a copy of the VR-MCL repository (missing "
              f"{', '.join(missing)})", file=sys.stderr)
        sys.exit(2)
    root = Path(authors_dir).resolve()
    try:
        import torchvision  # noqa: F401
    except ImportError:
        vision = types.ModuleType("torchvision")
        vision.transforms = types.ModuleType("torchvision.transforms")
        sys.modules.update({"torchvision": vision, "torchvision.transforms": vision.transforms})
    datasets = types.ModuleType("datasets")
    datasets.NAMES = {}
    models = types.ModuleType("models")
    models.__path__ = [str(root / "models")]
    models.get_all_models = lambda: ["vrmcl"]
    sys.modules.update({"datasets": datasets, "models": models})
    sys.path.insert(0, str(root))
    return importlib.import_module("models.vrmcl"), importlib.import_module("backbone.ResNet18_MAML")


@contextlib.contextmanager
def running_theirs():
    """``torch.float`` as float64 (their observe casts the batch with it), prints and warnings swallowed."""
    single = torch.float
    torch.float = torch.float64
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")     # torch.tensor(a_tensor)
            yield
    finally:
        torch.float = single


class ChoiceTape:
    """Their replay slots (``np.random.choice`` in ``Buffer.get_data``), handed to our memory."""

    def __init__(self):
        self.draws: deque = deque()
        self.notes: list[str] = []

    @contextlib.contextmanager
    def recording(self, buffer):
        choice = np.random.choice

        def recorded(pool, size, replace=True):
            rows = choice(pool, size=size, replace=replace)
            self.draws.append((pool, rows.tolist(), buffer.examples[rows].clone(), buffer.labels[rows].clone()))
            return rows
        np.random.choice = recorded
        try:
            yield
        finally:
            np.random.choice = choice

    @contextlib.contextmanager
    def playing(self):
        tape, original = self, ReservoirMemory.sample

        def sample(memory, k, replacement=True):
            if min(k, memory.size) == 0:      # theirs draws nothing from an empty buffer
                return None
            pool, rows, x, y = tape.draws.popleft()
            if pool != memory.size:
                tape.notes.append(f"pool ours {memory.size}, theirs {pool}")
            index = torch.tensor(rows)
            if not (torch.equal(memory.x[index], x.to(memory.x.dtype)) and torch.equal(memory.y[index], y)):
                tape.notes.append("replayed rows differ in content")
            return memory.x[index], memory.y[index], memory.t[index]
        ReservoirMemory.sample = sample
        try:
            yield
        finally:
            ReservoirMemory.sample = original


class TheirLossWeights(VRMCL):
    """Ours, with their meta-loss weighting: each replayed row counts 1/2, the sum over all rows."""

    replayed = 0

    def meta_batch(self, x, y, task):
        meta = super().meta_batch(x, y, task)
        self.replayed, self.meta_rows = len(meta[1]) - len(y), len(meta[1])   # ours: replay first
        return meta

    def loss(self, logits, y, task=None):
        rows = F.cross_entropy(logits, y, reduction="none")
        if self.replayed and len(y) == self.meta_rows:
            rows = torch.cat([0.5 * rows[:self.replayed], rows[self.replayed:]])
        return rows.sum() / len(y)


def gap(ours: torch.Tensor, theirs: list[torch.Tensor]) -> float:
    return float((ours - torch.cat([t.detach().reshape(-1) for t in theirs])).abs().max())


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


@torch.no_grad()
def resync(ours: VRMCL, theirs, net) -> None:
    """Ours from their state: weights, rates, momentum, previous weights (the memories agree already)."""
    n = len(ours.weights)
    ours.state.weights.copy_(flat(net.main.parameters()))
    ours.state.rates.copy_(flat(list(theirs.task_lr.values())[:n]))
    ours.previous_weights.copy_(flat(net.ema.parameters()))
    if theirs.momentum[0][0] is not None:
        ours.momentum = flat(m[0] for m in theirs.momentum[:n]).clone()


def case(module, backbone, glances: int, calls: int, outputs: int, seed: int, equal_start: bool) -> dict:
    torch.manual_seed(seed)
    with running_theirs():
        net = backbone.resnet18_maml(outputs, eman=True)
        theirs = module.VRMCL(net, F.cross_entropy, Namespace(**README, meta_update_per_batch=glances), None)
    params = VRMCL.Params(
        opt_lr=README["lr"], alpha_init=README["alpha_initial"], opt_wt=README["s_lr"],
        vr_momentum=README["s_momentum"], grad_clip_norm=README["grad_clip_norm"],
        inner_clamp=README["grad_clip_norm"], inner_steps=README["batch_size"] // README["inner_batch_size"],
        replay_batch_size=README["replay_batch_size"], memories=README["buffer_size"], second_order=True)
    ours = TheirLossWeights(copy.deepcopy(net.main), params, torch.Generator().manual_seed(seed))
    twin = None
    if not equal_start:   # ours again, from weights 1 ulp away: how fast rounding grows on its own
        twin = TheirLossWeights(copy.deepcopy(net.main), params, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            twin.state.weights.copy_(torch.nextafter(twin.state.weights, torch.tensor(float("inf"))))
            twin.previous_weights.copy_(twin.state.weights)
    task_info = Namespace(train_loader=range(calls), N_CLASSES_PER_TASK=outputs, i=outputs)
    g = torch.Generator().manual_seed(seed + 1)
    tape, rows = ChoiceTape(), []
    for task in range(2):
        with running_theirs():
            theirs.begin_task(task_info)
        for learner in (ours, twin) if twin else (ours,):
            learner.begin_task(task)
        for call in range(calls):
            # float32 numbers held in float64: their float32 buffer keeps them exactly
            x = torch.randn(README["batch_size"], 3, 32, 32, generator=g).float().double()
            y = torch.randint(0, outputs, (README["batch_size"],), generator=g)
            if equal_start:
                resync(ours, theirs, net)
            with identity_randperm(), running_theirs(), tape.recording(theirs.buffer):
                theirs_loss = theirs.observe(x, y, x, 0)
            drawn = list(tape.draws)
            with identity_randperm(), tape.playing():
                ours_loss = float(learn_batch(ours, x, y, task, glances=glances, first_epoch=True))
            if twin is not None:
                tape.draws.extend(drawn)
                with identity_randperm(), tape.playing():
                    learn_batch(twin, x, y, task, glances=glances, first_epoch=True)
            momentum = [m[0] for m in theirs.momentum[:len(ours.weights)]]
            rows.append(dict(task=task, call=call, ours_loss=ours_loss, theirs_loss=theirs_loss,
                             weights=gap(ours.state.weights, list(net.main.parameters())),
                             # their rates: one per parameter of net, main's then ema's (never used)
                             rates=gap(ours.state.rates, list(theirs.task_lr.values())[:len(ours.weights)]),
                             momentum=gap(ours.momentum, momentum),
                             previous=gap(ours.previous_weights, list(net.ema.parameters())),
                             twin=None if twin is None else gap(ours.state.weights, [twin.state.weights])))
            print(f"  {'equal start, ' * equal_start}glances {glances}, task {task} call {call}: "
                  f"loss ours {ours_loss:.10g} theirs {theirs_loss:.10g}; "
                  f"largest gap weights {rows[-1]['weights']:.1e} rates {rows[-1]['rates']:.1e} "
                  f"momentum {rows[-1]['momentum']:.1e} previous weights {rows[-1]['previous']:.1e}"
                  + ("" if twin is None else f"; ours vs ours 1 ulp apart: weights {rows[-1]['twin']:.1e}"), flush=True)
    notes = sorted(set(tape.notes)) + ([f"{len(tape.draws)} draws of theirs unused"] if tape.draws else [])
    if twin is not None:
        notes.append("weights gap after each call: " + ", ".join(f"{row['weights']:.0e}" for row in rows)
                     + "; ours against ours started 1 ulp apart: " + ", ".join(f"{row['twin']:.0e}" for row in rows))
    return dict(glances=glances, equal_start=equal_start, rows=rows, notes=notes)


def section(command: str, results: list[dict], seconds: float, commit: str) -> str:
    lines = [SECTION, "", f"Generated {datetime.date.today().isoformat()} ({seconds / 60:.1f} min, "
             f"torch {torch.__version__}, float64, one thread) by", "", f"    {command}", "",
             f"with their repository at commit {commit}, imported unmodified (bench/compare_vrmcl.py says what is "
             "stubbed and aligned). Their reduced ResNet-18 with their README's flags on CIFAR-shaped synthetic "
             "batches of 32, two tasks (their begin_task resets the previous weights) of the calls below; the "
             "largest difference over every call:", "",
             "| calls | glances | updates | loss ours / theirs (last call) | weights | rates | momentum "
             "| previous weights | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        last = r["rows"][-1]
        worst = {k: max(row[k] for row in r["rows"]) for k in ("weights", "rates", "momentum", "previous")}
        calls = "each from their state" if r["equal_start"] else "in a row"
        lines.append(f"| {calls} | {r['glances']} | {len(r['rows']) * r['glances']} "
                     f"| {last['ours_loss']:.10g} / {last['theirs_loss']:.10g} | {worst['weights']:.1e} "
                     f"| {worst['rates']:.1e} | {worst['momentum']:.1e} | {worst['previous']:.1e} "
                     f"| {'; '.join(r['notes'])} |")
    lines += ["", EXPLAINED]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of ``path`` (or append it), keeping every other section."""
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION)
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(SECTION))
    path.write_text(old[:start] + text + (old[end:] if end >= 0 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-dir", required=True,
                        help="a copy of WuYichen-97/Meta-Continual-Learning-Revisited-ICLR2024")
    parser.add_argument("--calls", type=int, default=3, help="observe calls per task (two tasks)")
    parser.add_argument("--glances", default="1,2", help="comma list: their --meta_update_per_batch, our glances")
    parser.add_argument("--outputs", type=int, default=10, help="outputs of the network")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--equal-start", action="store_true",
                        help="also run every call from their state (the gap of one call, not its growth over calls)")
    parser.add_argument("--commit", default="19aaa96", help="their commit, for the results")
    parser.add_argument("--results", default=None, help="markdown file whose VR-MCL section is rewritten")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    module, backbone = import_theirs(args.authors_dir)
    start, results = time.perf_counter(), []
    for equal_start in (False, True) if args.equal_start else (False,):
        for glances in (int(g) for g in args.glances.split(",")):
            results.append(case(module, backbone, glances, args.calls, args.outputs, args.seed, equal_start))
    seconds = time.perf_counter() - start
    for r in results:
        worst = max(max(row[k] for k in ("weights", "rates", "momentum", "previous")) for row in r["rows"])
        verdict = "within" if worst <= 1e-6 else "above"
        print(f"{'equal start, ' * r['equal_start']}glances {r['glances']}: "
              f"largest difference {worst:.1e} ({verdict} 1e-6)"
              + (f"; {'; '.join(r['notes'])}" if r["notes"] else ""))
    if args.results:
        command = "python " + " ".join(["bench/compare_vrmcl.py", *sys.argv[1:]])
        write_section(Path(args.results), section(command, results, seconds, args.commit))


if __name__ == "__main__":
    main()
