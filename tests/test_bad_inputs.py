"""A table of bad inputs, each with the one line the user should read (issue: hostile input).

Run in-process through ``lamaml.cli.main`` so the whole table costs seconds. Each case must end
with exit status 2 (a user mistake), exactly one line on stderr starting with ``lamaml:`` and
naming the problem, no traceback, and no result file.
"""
import gzip
import shutil

import pytest

from lamaml.cli import main

CASES = [
    # (id, arguments after "run" unless they start with another command, expected message)
    ("unknown benchmark", ["--benchmark", "mnist-rotatoins"], "unknown benchmark 'mnist-rotatoins'; choose from"),
    ("unknown method", ["--method", "lamaml"], "unknown method 'lamaml'; choose from a-gem"),
    ("zero glances", ["--set", "glances=0"], "--set glances=0: glances must be greater than or equal to 1"),
    ("fractional glances", ["--set", "glances=2.5"], "--set glances=2.5: glances must be a valid integer"),
    ("text alpha", ["--set", "alpha_init=abc"], "--set alpha_init=abc: alpha_init must be a valid number"),
    ("negative alpha", ["--set", "alpha_init=-1"], "alpha_init must be greater than or equal to 0"),
    ("nan alpha", ["--set", "alpha_init=nan"], "--set alpha_init=nan: alpha_init must be a finite number"),
    ("infinite eta", ["--set", "opt_lr=inf"], "--set opt_lr=inf: opt_lr must be a finite number"),
    ("negative memories", ["--set", "memories=-5"], "memories must be greater than or equal to 0"),
    ("negative replay", ["--set", "replay_batch_size=-1"], "replay_batch_size must be greater than or equal to 0"),
    ("zero batch", ["--set", "batch_size=0"], "batch_size must be greater than or equal to 1"),
    ("batch over task", ["--set", "batch_size=2000"], "batch_size=2000 exceeds the 1000 training samples per task"),
    ("inner steps over batch", ["--set", "inner_steps=11"], "inner_steps=11 exceeds batch_size=10"),
    ("zero inner steps", ["--set", "inner_steps=0"], "inner_steps must be greater than or equal to 1"),
    ("unknown meta-loss", ["--set", "meta_loss=median"], "meta_loss must be 'mean' or 'last'"),
    ("unknown device", ["--set", "device=tpu"], "device must be 'cpu', 'cuda' or 'auto'"),
    ("unknown init", ["--set", "init=zeros"], "init must be 'kaiming-normal', 'kaiming-normal-gain1', 'xavier-uniform' or 'xavier-normal'"),
    ("unknown evaluate", ["--set", "evaluate=some"], "evaluate must be 'all', 'seen' or 'metrics'"),
    ("zero epochs", ["--set", "epochs=0"], "epochs must be greater than or equal to 1"),
    ("negative seed via set", ["--set", "seed=-3"], "seed must be greater than or equal to 0"),
    ("negative seed", ["--seed", "-1"], "seed must be greater than or equal to 0"),
    ("zero tasks", ["--tasks", "0"], "tasks must be greater than or equal to 1"),
    ("too many tasks", ["--tasks", "21"], "tasks=21: mnist-rotations has 20 tasks"),
    ("unknown key", ["--set", "colour=red"], "--set colour: unknown setting for la-maml; allowed:"),
    ("key of another method", ["--set", "lr=0.1"], "--set lr: unknown setting for la-maml"),
    ("set without value", ["--set", "glances"], "--set glances: expected key=value"),
    ("set without key", ["--set", "=5"], "--set =5: expected key=value"),
    ("zero samples", ["--set", "samples_per_task=0"], "samples_per_task must be greater than or equal to 1"),
    ("more samples than MNIST", ["--set", "samples_per_task=60001", "--set", "batch_size=1"],
     "samples_per_task=60001: must be in 1..60000"),
    ("zero clip", ["--set", "grad_clip_norm=0"], "grad_clip_norm must be greater than 0"),
    ("non-boolean switch", ["--set", "second_order=maybe"], "second_order must be a valid boolean"),
    ("zero eval batch", ["--set", "eval_batch_size=0"], "eval_batch_size must be greater than or equal to 1"),
    ("negative EWC strength", ["--method", "ewc", "--set", "memory_strength=-1"],
     "memory_strength must be greater than or equal to 0"),
    ("MER beta over one", ["--method", "mer", "--set", "beta=1.5"], "beta must be less than or equal to 1"),
    ("zero checkpoint period", ["--checkpoint-every", "0", "--out", "{out}"], "--checkpoint-every 0: expected N"),
    ("checkpoints without a folder", ["--checkpoint-every", "2"], "--checkpoint-every needs --out DIR"),
    ("resume of nothing", ["--resume", "{tmp}/nothing"], "no checkpoint there"),
    ("output is a file", ["--out", "{tmp}/a-file"], "cannot create that folder"),
    ("missing data folder", ["--data-dir", "{tmp}/absent", "--no-download"],
     "train-images-idx3-ubyte.gz is missing: looked in"),
    ("corrupted IDX", ["--data-dir", "{tmp}/corrupt"], "t10k-labels-idx1-ubyte.gz is corrupt: its sha256"),
    ("truncated IDX", ["--data-dir", "{tmp}/truncated"], "train-labels-idx1-ubyte is corrupt or truncated"),
    ("wrong magic", ["--data-dir", "{tmp}/magic"], "is not an MNIST IDX file: wrong magic number"),
    ("analysis for a method without fast weights", ["--method", "online", "--analyses", "fast-weights"],
     "analyses=fast-weights needs a look-ahead method"),
    ("unknown analysis", ["--analyses", "alignement"], "--set analyses=['alignement']: analyses.0 must be"),
    ("zero analysis interval", ["--set", "analysis_every=0"], "analysis_every must be greater than or equal to 1"),
    ("plot of a missing run", ["plot", "matrix", "--runs", "{tmp}/absent", "--out", "{out}/m"],
     "--runs {tmp}/absent: no readable metrics.json there"),
    ("plot with nothing selected", ["plot", "ra-curve", "--out", "{out}/m"], "no finished runs selected"),
    ("bad figure LR values", ["reproduce", "figures", "--lr-values", "0.1,x", "--out", "{out}"],
     "--lr-values 0.1,x: expected numbers separated by commas"),
    ("zero seeds", ["reproduce", "table1", "--seeds", "0", "--out", "{out}"], "--seeds 0 --jobs 2: both must be >= 1"),
    ("bad reproduce override", ["reproduce", "table1", "--set", "glances=-2", "--out", "{out}"],
     "--set glances=-2: glances must be greater than or equal to 1"),
]


@pytest.fixture(scope="module")
def broken_data(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "a-file").write_text("not a folder")
    for name in ("corrupt", "truncated", "magic"):
        shutil.copytree(data_dir / "mnist", root / name / "mnist")
    target = root / "corrupt" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    packed = root / "truncated" / "mnist" / "train-labels-idx1-ubyte.gz"
    (root / "truncated" / "mnist" / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(packed.read_bytes())[:-3])
    packed.unlink()
    (root / "magic" / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    (root / "magic" / "mnist" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(64))
    return root


def test_the_table_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(name, argv, message, broken_data, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LAMAML_DATA", str(data_dir))
    argv = [a.format(tmp=broken_data, out=tmp_path / "out") for a in argv]
    message = message.format(tmp=broken_data)
    if argv[0] not in ("reproduce", "plot"):
        argv = ["run", "--dry-run", *argv]
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("lamaml: ") and message in err[0], err
    assert not list((tmp_path).rglob("metrics.json"))
