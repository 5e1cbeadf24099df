"""Our updates against the authors' own code, on the same weights and data, in float64.

Needs a checkout of the authors' repository (montrealrobotics/La-MAML; not shipped here, it has no
licence). Their files (``model/*.py``, ``model/meta/learner.py``, ``model/meta/modelfactory.py``,
``model/optimizers_lib``, ``parser.py`` and the flags of ``run_experiments.sh``) are imported or read
from it at run time, unmodified; nothing of theirs is copied into this repository. Their GEM needs
``quadprog`` (``pip install quadprog``): a dev-only need of this script, not a dependency of lamaml.

    python bench/compare_authors.py --authors-dir /tmp/La-MAML --methods all \\
        [--mer-dir /tmp/MER] [--data-dir DIR] [--results docs/results/authors-code-check.md]

``--methods`` takes a comma list of:

* the Table 2 methods (iid, er, icarl, gem, a-gem, mer, meta-bgd, c-maml, la-er, sync-la-maml,
  la-maml): five (iCaRL: eight) ``observe`` calls of ours and theirs with the preset's glances on
  CIFAR- and Tiny-ImageNet-shaped synthetic data, memory filled from an earlier task, then the
  largest weight and rate difference (bench/authors/cases.py says how the two sides are aligned);
* ``tiny-real``: Tiny ImageNet La-MAML, one glance at 10 real images, with the authors' init and ours;
* ``mnist-real``: MNIST Rotations La-MAML, C-MAML and Sync La-MAML, five glances at real images
  with a fixed meta-batch (their ``model/lamaml.py``);
* ``mnist-baselines``: the MNIST baselines against the MER authors' code (bench/compare_mer.py,
  needs ``--mer-dir``).

``all`` is all of these; the real-data cases are skipped (with a line on stderr) where their data
is not in ``--data-dir``, the MNIST baselines where ``--mer-dir`` is not given. ``--shapes`` limits
the synthetic cases to cifar100 or tinyimagenet. ``--results`` rewrites the part of that markdown
file above its first ``## `` heading with the table; the sections below it are kept as they are.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))   # bench/authors, bench/compare_mer.py

from authors import cases, theirs as authors                  # noqa: E402
from authors.tapes import identity_randperm                    # noqa: E402  (re-exported for other scripts)
from lamaml.config import resolve_config                       # noqa: E402
from lamaml.data import build_benchmark, resolve_data_dir      # noqa: E402
from lamaml.engine import build_method                         # noqa: E402
from lamaml.engine.loop import learn_batch                      # noqa: E402
from lamaml.errors import UserError                            # noqa: E402
from lamaml.models import build_model                          # noqa: E402

AUTHORS_COMMIT = "cff3524 (model files unchanged since 562c780)"
REAL_DATA = ("tiny-real", "mnist-real")
CHOICES = cases.TABLE2 + REAL_DATA + ("mnist-baselines",)
__all__ = ["authors_args", "import_authors", "identity_randperm", "main"]


def import_authors(authors_dir: str):
    """Their MNIST (``model/lamaml.py``) and CIFAR (``model/lamaml_cifar.py``) La-MAML modules."""
    authors.check_checkout(authors_dir, ("model/lamaml.py", "model/lamaml_cifar.py", "model/lamaml_base.py",
                                         "model/meta/learner.py", "model/meta/modelfactory.py"))
    return (authors.import_module(authors_dir, "model.lamaml"),
            authors.import_module(authors_dir, "model.lamaml_cifar"))


def authors_args(config, dataset: str, arch: str) -> Namespace:
    """Their La-MAML flags from one of our La-MAML-family configs (MNIST scripts' conventions)."""
    p = config.params
    return Namespace(n_layers=2, n_hiddens=100, arch=arch, dataset=dataset, xav_init=False,
                     alpha_init=p["alpha_init"], opt_wt=p.get("opt_wt", 0.1), opt_lr=p.get("opt_lr", 0.1),
                     glances=config.glances, memories=p["memories"], replay_batch_size=p["replay_batch_size"],
                     cuda=False, cifar_batches=p["inner_steps"] or 3, second_order=p["second_order"],
                     grad_clip_norm=p["grad_clip_norm"], learn_lr=config.method != "c-maml",
                     sync_update=config.method != "la-maml", use_old_task_memory=True)


# -- the real-data cases ---------------------------------------------------------------------

def _rates_gap(ours, theirs) -> float:
    return cases.largest_gap([a.detach() for a in ours.alpha.values()], list(theirs.net.alpha_lr))


def tiny_real_rows(authors_dir: str, data_dir) -> list[cases.Row]:
    """La-MAML, the Tiny preset's flags, one glance at 10 real training images of task 0, with the
    authors' init (gain sqrt 2, which diverges) and with the preset's (gain 1)."""
    module = authors.import_module(authors_dir, "model.lamaml_cifar")
    stream = build_benchmark("tinyimagenet", data_dir, 0, None, False).first(1)
    x, y = stream[0].train()
    x, y = stream[0].prepare(x[:10], torch.Generator().manual_seed(1)), y[:10]
    # Their getBatch builds the meta-batch through .float(): the images are rounded to float32 once,
    # here, so that round trip is exact (as for the synthetic cases).
    x = x.float().to(torch.get_default_dtype())
    rows = []
    for init in ("kaiming-normal", "kaiming-normal-gain1"):
        config = resolve_config("tinyimagenet", "la-maml", {"glances": 1, "init": init})
        torch.manual_seed(0)
        model = build_model("pc-cnn", stream.input_shape, stream.n_outputs, init)
        theirs = authors.build_net(module, (3, 64, 64), 200, 40, authors_args(config, "tinyimagenet", "pc_cnn"))
        ours = build_method("la-maml", model, config.method_params(), 0)
        ours.use_task_heads(stream.head_mask())
        cases.start_alike(theirs, ours, "la-maml")
        with identity_randperm(), authors.running_theirs():
            theirs_loss = theirs.observe(x, y, 0)
        ours_loss = float(ours.observe(x, y, 0, first_sight=True))
        rows.append(cases.Row(f"Tiny real images la-maml, init {init}, 1 glance", ours_loss, theirs_loss,
                              cases.largest_gap(list(ours.model.parameters()), list(theirs.net.parameters())),
                              _rates_gap(ours, theirs)))
    return rows


def mnist_real_rows(authors_dir: str, data_dir) -> list[cases.Row]:
    """MNIST Rotations, five glances at one batch of 10, meta-batch = 10 fixed replay images + the batch."""
    module = authors.import_module(authors_dir, "model.lamaml")
    stream = build_benchmark("mnist-rotations", data_dir, 0, None, False).first(1)
    x, y = stream[0].train()
    x = x.to(torch.get_default_dtype())
    batch, replay = (x[:10].flatten(1), y[:10]), (x[10:20].flatten(1), y[10:20])
    meta_batch = (torch.cat([replay[0], batch[0]]), torch.cat([replay[1], batch[1]]), torch.zeros(20, dtype=torch.long))
    rows = []
    for method in ("la-maml", "c-maml", "sync-la-maml"):
        config = resolve_config("mnist-rotations", method)
        torch.manual_seed(0)
        model = build_model("mlp", (784,), 10)
        theirs = authors.build_net(module, (784,), 10, 20, authors_args(config, "mnist_rotations", "linear"))
        ours = build_method(method, model, config.method_params(), 0)
        cases.start_alike(theirs, ours, method)
        theirs.getBatch = lambda *args, **kwargs: meta_batch
        ours.meta_batch = lambda *args: meta_batch
        with identity_randperm(), authors.running_theirs():
            theirs_loss = theirs.observe(*batch, 0)
        ours_loss = float(learn_batch(ours, *batch, 0, glances=config.glances, first_epoch=True))
        rates = _rates_gap(ours, theirs) if method != "c-maml" else None
        rows.append(cases.Row(f"MNIST real images {method}, {config.glances} glances", ours_loss, theirs_loss,
                              cases.largest_gap(list(ours.model.parameters()), list(theirs.net.parameters())), rates))
    return rows


def mnist_baseline_rows(mer_dir: str, data_dir) -> list[cases.Row]:
    compare_mer = importlib.import_module("compare_mer")      # written alongside; imported only when asked
    return [cases.Row(r["case"], r["ours_loss"], r["theirs_loss"], r["weights_diff"], None,
                      [r["note"]] if r.get("note") else [])
            for r in compare_mer.mnist_baseline_rows(mer_dir, data_dir)]


# -- the table -------------------------------------------------------------------------------

def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[cases.Row]) -> list[str]:
    lines = ["| case | loss ours | loss authors | weights: largest difference | rates: largest difference | notes |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case} | {r.ours_loss:.10g} | {r.theirs_loss:.10g} | {r.weights_diff:.1e} "
                     f"| {fmt(r.rates_diff, '.1e')} | {'; '.join(r.notes)} |")
    return lines


def summary(rows: list[cases.Row]) -> list[str]:
    """Per Table 2 method, the largest difference over both shapes, and whether it is within 1e-6
    (else what explains it: a preset value, or rounding that grows over calls while each call from
    an equal start is within 1e-6; bench/authors/cases.py, checked_case)."""
    lines = ["| method | weights: largest difference | rates: largest difference | within 1e-6 |",
             "|---|---|---|---|"]
    for method in cases.TABLE2:
        mine = [r for r in rows if r.method == method]
        if not mine:
            continue
        weights = max(r.weights_diff for r in mine)
        rates = [r.rates_diff for r in mine if r.rates_diff is not None]
        verdicts = [f"{r.case.split(' ')[0]}: {r.verdict}" for r in mine if r.verdict != "yes"]
        lines.append(f"| {method} | {weights:.1e} | {fmt(max(rates) if rates else None, '.1e')} "
                     f"| {'; '.join(verdicts) or 'yes'} |")
    return lines


def write_results(path: Path, command: str, rows: list[cases.Row], seconds: float) -> None:
    kept = ""
    if path.exists():
        text = path.read_text()
        start = text.find("\n## ")
        kept = text[start + 1:] if start >= 0 else ""
    head = [
        "# Our updates against the authors' unmodified code",
        "",
        f"Generated {datetime.date.today().isoformat()} on the 2-core CPU reference machine "
        f"({seconds / 60:.0f} min) by",
        "",
        f"    {command}",
        "",
        f"with `/tmp/La-MAML` a checkout of montrealrobotics/La-MAML at commit {AUTHORS_COMMIT}: their "
        "`model/*.py`, `model/meta/learner.py`, `model/meta/modelfactory.py`, `model/optimizers_lib`, "
        "`parser.py` and the flags of `run_experiments.sh`, imported or read unmodified (only `ipdb` is "
        "stubbed, `Tensor.cuda` is the identity while their code runs, their `getBatch`'s `.float()` and "
        "GEM's float32 memory are cast back to float64: bench/authors/theirs.py). Both sides in float64, "
        f"torch {torch.__version__}, one thread. Both start from the same weights; their replay draws, "
        "Meta-BGD's noise and iCaRL's exemplar picks are recorded and handed to ours (bench/authors/tapes.py); "
        "the schedules are in bench/authors/cases.py. Ours: our presets; theirs: their parser's defaults plus "
        "the method's line of run_experiments.sh; a preset value that differs is named in the notes.",
        "",
        *(["The rows \"Tiny real images\" and \"MNIST real images\" are the La-MAML family on real data "
           "(tiny-real, mnist-real); the mnist-rotations rows are bench/compare_mer.py's MNIST baselines "
           "against the MER repository's code (--mer-dir).", ""]
          if any(r.method is None for r in rows) else []),
        "Per method, the largest difference over the CIFAR- and Tiny-shaped cases:",
        "",
        *summary(rows),
        "",
        "Every case:",
        "",
        *table(rows),
        "",
    ]
    path.write_text("\n".join(head) + ("\n" + kept if kept else ""))


# -- main ------------------------------------------------------------------------------------

def parse_methods(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(CHOICES)
    unknown = [n for n in names if n not in CHOICES]
    if unknown or not names:
        print(f"lamaml: --methods {text}: unknown {', '.join(unknown) or '(empty)'}; choose from all, "
              f"{', '.join(CHOICES)}", file=sys.stderr)
        sys.exit(2)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-dir", required=True, help="a checkout of montrealrobotics/La-MAML")
    parser.add_argument("--methods", default="all", help="comma list (see the docstring) or all")
    parser.add_argument("--shapes", default="cifar100,tinyimagenet", help="synthetic shapes: cifar100, tinyimagenet")
    parser.add_argument("--mer-dir", default=None, help="a checkout of mattriemer/MER (the MNIST baselines)")
    parser.add_argument("--data-dir", default=None, help="real data for tiny-real, mnist-real, mnist-baselines")
    parser.add_argument("--results", default=None, help="markdown file whose top part (above its first ## heading) "
                                                        "is rewritten with the table")
    args = parser.parse_args()
    methods = parse_methods(args.methods)
    explicit = args.methods.strip() != "all"
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not shapes or any(s not in cases.SHAPES for s in shapes):
        print(f"lamaml: --shapes {args.shapes}: choose from {', '.join(cases.SHAPES)}", file=sys.stderr)
        sys.exit(2)
    if "mnist-baselines" in methods and not args.mer_dir:
        if explicit:
            print("lamaml: --methods mnist-baselines needs --mer-dir (a checkout of mattriemer/MER)", file=sys.stderr)
            sys.exit(2)
        methods.remove("mnist-baselines")
        print("compare_authors: MNIST baselines skipped (no --mer-dir)", file=sys.stderr)
    authors.check_checkout(args.authors_dir)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    data_dir = resolve_data_dir(args.data_dir)
    start = time.perf_counter()

    rows: list[cases.Row] = []
    print("\n".join(table([])), flush=True)
    for name in methods:
        try:
            if name in cases.TABLE2:
                new = [cases.checked_case(args.authors_dir, name, shape) for shape in shapes]
                new += [cases.checked_case(args.authors_dir, name, shape, both)
                        for both in cases.VARIANTS.get(name, []) for shape in shapes]
            elif name == "tiny-real":
                new = tiny_real_rows(args.authors_dir, data_dir)
            elif name == "mnist-real":
                new = mnist_real_rows(args.authors_dir, data_dir)
            else:
                new = mnist_baseline_rows(args.mer_dir, args.data_dir)
        except UserError as error:   # real data missing
            if explicit:
                print(f"lamaml: {error}", file=sys.stderr)
                sys.exit(error.exit_code)
            print(f"compare_authors: {name} skipped: {error}", file=sys.stderr)
            continue
        for row in new:
            print(table([row])[-1], flush=True)
        rows += new
    seconds = time.perf_counter() - start
    if args.results:
        command = "python " + " ".join(["bench/compare_authors.py", *sys.argv[1:]])
        write_results(Path(args.results), command, rows, seconds)


if __name__ == "__main__":
    main()
