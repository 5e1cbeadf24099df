"""The authors' side: their unmodified files, their scripts' flags, and what their code needs to run
here (a CPU, float64). Nothing of theirs is copied into this repository: every file is imported from
the checkout given on the command line at run time.

Runtime adaptations, none of which changes what their code computes:

* ``ipdb`` (imported by most of their files, used only on NaN) is a stub whose ``set_trace`` raises.
* ``Tensor.cuda`` is the identity while their code runs: BGD's optimizer (meta-bgd) and iCaRL's
  exemplar selection call ``.cuda()`` unconditionally.
* float64: their ``getBatch`` casts with ``.float()`` and GEM / A-GEM allocate their episodic memory
  as ``torch.FloatTensor``. The synthetic inputs are float32 numbers held in float64, so the
  round trip is exact: ``getBatch``'s outputs are cast back to the default dtype, and the episodic
  memory is replaced after construction by a float64 tensor of the same shape.
* their prints (iCaRL at the end of a task, A-GEM every 100 calls) are swallowed.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import sys
import types
import warnings
from argparse import Namespace
from math import prod
from pathlib import Path

import torch

# The Table 2 methods: their module, and the name of their block in run_experiments.sh.
MODULES = {"iid": "model.iid2", "er": "model.eralg4", "la-er": "model.eralg4", "icarl": "model.icarl",
           "gem": "model.gem", "a-gem": "model.agem", "mer": "model.meralg1", "meta-bgd": "model.meta-bgd",
           "c-maml": "model.lamaml_cifar", "sync-la-maml": "model.lamaml_cifar", "la-maml": "model.lamaml_cifar"}
SCRIPT_BLOCKS = {"iid": "IID", "er": "ER", "la-er": "La-ER", "icarl": "Icarl", "gem": "GEM", "a-gem": "AGEM",
                 "mer": "MER", "meta-bgd": "Meta BGD", "sync-la-maml": "sync", "c-maml": "C-MAML",
                 "la-maml": "La-MAML"}
# Our benchmark name -> the start of their run_experiments.sh section title.
SCRIPT_SECTIONS = {"cifar100": "cifar dataset", "tinyimagenet": "tinyimagenet dataset"}
REQUIRED = ("parser.py", "run_experiments.sh", "model/meta/learner.py", "model/meta/modelfactory.py",
            "model/lamaml_base.py", "model/lamaml.py", "model/lamaml_cifar.py", "model/eralg4.py",
            "model/iid2.py", "model/icarl.py", "model/gem.py", "model/agem.py", "model/meralg1.py",
            "model/meta-bgd.py", "model/optimizers_lib/optimizers_lib.py")


def check_checkout(authors_dir: str, files: tuple[str, ...] = REQUIRED) -> None:
    missing = [name for name in files if not (Path(authors_dir) / name).is_file()]
    if missing:
        print(f"lamaml: --authors-dir {authors_dir}: not a checkout of montrealrobotics/La-MAML "
              f"(missing {', '.join(missing)})", file=sys.stderr)
        sys.exit(2)


def _stub_ipdb() -> None:
    if "ipdb" in sys.modules:
        return
    stub = types.ModuleType("ipdb")

    def set_trace(*args, **kwargs):
        raise RuntimeError("the authors' code reached ipdb.set_trace() (a NaN or a failed forward)")
    stub.set_trace = set_trace
    sys.modules["ipdb"] = stub


def import_module(authors_dir: str, name: str) -> types.ModuleType:
    """``name`` (e.g. ``model.lamaml_cifar``) from the checkout, unmodified."""
    _stub_ipdb()
    root = str(Path(authors_dir).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    if name == "model.gem":   # their GEM solves its QP with quadprog (a dev-only need of this bench)
        try:
            import quadprog  # noqa: F401
        except ImportError:
            print("lamaml: the authors' model/gem.py needs quadprog: pip install quadprog", file=sys.stderr)
            sys.exit(2)
    with warnings.catch_warnings():   # their learner.py compares strings with "is"
        warnings.simplefilter("ignore", SyntaxWarning)
        return importlib.import_module(name)


def _their_parser(authors_dir: str):
    spec = importlib.util.spec_from_file_location("_lamaml_authors_parser", Path(authors_dir) / "parser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_parser()


def script_flags(authors_dir: str, benchmark: str, setting: str, method: str) -> list[str]:
    """The command-line flags of ``method``'s line in their run_experiments.sh, for ``benchmark``
    (cifar100, tinyimagenet) and ``setting`` (single, multi), with the script's variables expanded."""
    text = (Path(authors_dir) / "run_experiments.sh").read_text()
    variables = {m[1]: m[3] for m in re.finditer(r"^(\w+)=(['\"]?)(.*?)\2\s*$", text, re.M)}
    section = block = None
    wanted = f"{SCRIPT_SECTIONS[benchmark]} {setting}-pass"
    for line in text.replace("\\\n", " ").splitlines():
        if m := re.match(r"#{10} (.*?) #{10}", line):
            section = m[1].strip().lower()
        elif m := re.match(r"#{5} (.*?) #{5}", line):
            block = m[1].strip()
        elif line.strip().startswith("python3 main.py") and section == wanted and block == SCRIPT_BLOCKS[method]:
            expanded = re.sub(r"\$(\w+)", lambda v: variables.get(v[1], ""), line)
            return shlex.split(expanded)[2:]
    raise LookupError(f"run_experiments.sh has no {SCRIPT_BLOCKS[method]} line under '{wanted}'")


def their_args(authors_dir: str, benchmark: str, setting: str, method: str, **changes) -> Namespace:
    """Their parser's defaults plus the script line's flags (on a CPU), then ``changes``."""
    flags = script_flags(authors_dir, benchmark, setting, method)
    args = _their_parser(authors_dir).parse_args(flags)
    args.cuda = False
    for key, value in changes.items():
        setattr(args, key, value)
    return args


@contextlib.contextmanager
def running_theirs():
    """What their code needs around every call: ``Tensor.cuda`` as the identity, prints and warnings
    swallowed."""
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # e.g. KLDivLoss's reduction='mean' (iCaRL)
            yield
    finally:
        torch.Tensor.cuda = cuda


def _to_default_dtype(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.get_default_dtype())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_default_dtype(v) for v in value)
    return value


def build_net(module: types.ModuleType, input_shape: tuple[int, ...], n_outputs: int, n_tasks: int,
              args: Namespace):
    """Their ``Net``, adapted to float64 as the module docstring says."""
    with running_theirs():
        net = module.Net(prod(input_shape), n_outputs, n_tasks, args)
    if hasattr(net, "memory_data"):   # GEM, A-GEM: torch.FloatTensor whatever the default dtype
        net.memory_data = torch.zeros(net.memory_data.shape)
    if hasattr(net, "getBatch"):
        get_batch = net.getBatch
        net.getBatch = lambda *a, **k: _to_default_dtype(get_batch(*a, **k))
    return net
