"""`lamaml run --seeds`: several seeds as one batched computation, each seed the run it would be alone."""
import json
import re
import sqlite3

import pytest
import torch

from conftest import run_lamaml
from lamaml.config import resolve_config
from lamaml.engine.run import prepare, train_as_configured
from lamaml.engine.seeds import prepare_seeds, seed_configs, train_seeds
from lamaml.methods import batched, method_class
from lamaml.models.mlp import MLP

VARIANTS = [("la-maml", {}), ("sync-la-maml", {}), ("c-maml", {}), ("la-maml", {"meta_loss": "last"}),
            ("la-maml", {"inner_steps": 3}), ("la-maml", {"relu_in_inner": False}),
            ("la-maml", {"grad_clip_norm": None, "alpha_init": 0.5}), ("la-maml", {"memories": 0}),
            ("la-maml", {"snapshot_memory": True})]


def _learner(name, seed, **params):
    torch.manual_seed(100 + seed)
    cls = method_class(name)
    return cls(MLP(30, (12, 9), 5), cls.Params(**{"memories": 25, **params}), torch.Generator().manual_seed(seed))


def _relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name,params", VARIANTS, ids=[f"{n}-{','.join(p) or 'defaults'}" for n, p in VARIANTS])
def test_each_batched_seed_takes_the_meta_updates_of_its_own_learner_in_float64(name, params, double):
    seeds = [0, 1, 2]
    alone, together = [_learner(name, k, **params) for k in seeds], [_learner(name, k, **params) for k in seeds]
    start = [learner.state.weights.clone() for learner in alone]
    group, reason = batched(together)
    assert reason is None
    data = torch.Generator().manual_seed(5)
    for b in range(12):                            # two tasks of 6 batches, 5 glances each
        task = b // 6
        if b % 6 == 0:
            for learner in alone + together:
                learner.begin_task(task)
        xs = [torch.rand(10, 30, generator=data) for _ in seeds]
        ys = [torch.randint(0, 5, (10,), generator=data) for _ in seeds]
        for glance in range(5):
            losses = [learner.observe(x, y, task, first_sight=glance == 0) for learner, x, y in zip(alone, xs, ys)]
            together_losses = group.observe(xs, ys, task, first_sight=glance == 0)
            assert _relative(together_losses, torch.stack(losses)) < 1e-10
        for learner, x, y in zip(alone, xs, ys):
            learner.end_batch(x, y, task, first_sight=True)
        group.end_batch(xs, ys, task, first_sight=True)
    for one, other, first in zip(alone, together, start):
        assert _relative(other.state.weights, one.state.weights) < 1e-10
        assert _relative(other.state.rates, one.state.rates) < 1e-10
        # the model predicts with the stacked row
        assert torch.equal(torch.cat([p.reshape(-1) for p in other.model.parameters()]), other.state.weights)
        assert _relative(one.state.weights, first) > 0.05       # not vacuous: the weights moved
        assert one.memory.size == other.memory.size and (not one.memory.size or torch.equal(one.memory.x, other.memory.x))


def test_the_first_meta_updates_of_a_batched_mnist_run_equal_each_separate_run(data_dir, double):
    """Two tasks of 3 batches x 5 glances: each seed's stream, initial weights, batch order, replay and
    rates as its own `lamaml run --seed k` has them."""
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 30}, tasks=2)
    configs = seed_configs(config, [0, 3])
    runs, reason = prepare_seeds(configs, data_dir, download=False)
    assert reason is None
    together = train_seeds(runs)
    for c, method, result in zip(configs, runs.methods, together):
        _, stream, alone, _ = prepare(c, data_dir, download=False)
        start = alone.state.weights.clone()
        separate = train_as_configured(alone, stream, c, torch.device("cpu"))
        assert separate.updates == result.updates == 2 * 3 * 5
        assert _relative(method.state.weights, alone.state.weights) < 1e-5
        assert _relative(method.state.rates, alone.state.rates) < 1e-5
        assert _relative(alone.state.weights, start) > 0.01
        assert result.losses == pytest.approx(separate.losses, rel=1e-9)
        assert (result.acc_matrix == separate.acc_matrix)[~torch.isnan(torch.from_numpy(separate.acc_matrix))].all()
    assert not torch.equal(runs.methods[0].state.weights, runs.methods[1].state.weights)


def test_batched_seeds_take_their_separate_runs_meta_updates_to_the_bit(data_dir):
    """float32, MNIST's sizes, as `lamaml run` resolves the thread counts (``train_threads: auto``):
    each separate run computes the seeds' factored form for its one seed, so every bit agrees."""
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 30}, tasks=2)
    configs = seed_configs(config, [0, 3])
    runs, reason = prepare_seeds(configs, data_dir, download=False)
    assert reason is None
    together = train_seeds(runs)
    for c, method, result in zip(runs.configs, runs.methods, together):
        _, stream, alone, _ = prepare(c, data_dir, download=False)
        assert alone.backend.name == "factored"
        separate = train_as_configured(alone, stream, c, torch.device("cpu"))
        assert torch.equal(method.state.weights, alone.state.weights)
        assert torch.equal(method.state.rates, alone.state.rates)
        assert result.losses == separate.losses
        assert (result.acc_matrix == separate.acc_matrix)[~torch.isnan(torch.from_numpy(separate.acc_matrix))].all()


@pytest.mark.parametrize("name,params,why", [
    ("la-maml", {"fast_path": False}, "autograd backend"),
    ("la-maml", {"second_order": True}, "autograd backend"),
    ("la-maml", {"inner_clamp": 0.01}, "inner_clamp"),
    ("la-maml", {"factored": False}, "factored=false"),
    ("la-er", {}, "replay loss"),
    ("vr-mcl", {}, "variance reduction"),
    ("meta-bgd", {}, "changes the look-ahead update"),
    ("er", {}, "not a La-MAML-family learner"),
])
def test_learners_the_batched_form_does_not_hold_for_are_refused_with_the_reason(name, params, why):
    cls = method_class(name)
    learners = [cls(MLP(30, (12,), 5), cls.Params(**params), torch.Generator().manual_seed(k)) for k in range(2)]
    group, reason = batched(learners)
    assert group is None and why in reason


def test_seeds_with_different_hyperparameters_are_refused():
    group, reason = batched([_learner("la-maml", 0), _learner("la-maml", 1, opt_lr=0.1)])
    assert group is None and "hyperparameters differ" in reason


TINY = ["--tasks", "2", "--set", "samples_per_task=30", "--quiet"]


def test_each_seed_is_recorded_as_a_separate_run_would_be(data_dir, tmp_path):
    store = tmp_path / "runs.sqlite"
    result = run_lamaml("run", "--seeds", "0-2", "--jobs", "1", *TINY[:-1], "--out", tmp_path / "seeds",
                        "--store", store, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    # batched in one process (no fallback note): one progress line per task with each seed's RA so far
    assert [re.sub(r"\d+\.\d\d", "X", line).rsplit(",", 1)[0] for line in result.stderr.splitlines()] == \
        [f"la-maml on mnist-rotations, seeds 0-2: task {t}/2 done, RA X / X / X %" for t in (1, 2)]
    single = run_lamaml("run", "--seed", "1", *TINY, "--out", tmp_path / "one", data_dir=data_dir)
    assert single.returncode == 0, single.stderr
    alone = json.loads((tmp_path / "one" / "metrics.json").read_text())
    metrics = [json.loads((tmp_path / "seeds" / f"seed{k}" / "metrics.json").read_text()) for k in range(3)]
    assert [m["seed"] for m in metrics] == [0, 1, 2]
    for m in metrics:
        assert set(m) == set(alone)
        assert json.loads((tmp_path / "seeds" / f"seed{m['seed']}" / "status.json").read_text())["status"] == "done"
    assert metrics[1]["tasks"] == alone["tasks"]      # seed 1's own stream (its rotation angles)
    assert metrics[1]["ra"] == alone["ra"] and metrics[1]["acc_matrix"] == alone["acc_matrix"]   # to the bit
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT seed, status, ra FROM runs ORDER BY seed").fetchall()
    assert [(seed, status) for seed, status, _ in rows] == [(0, "done"), (1, "done"), (2, "done")]
    assert [ra for *_, ra in rows] == [m["ra"] for m in metrics]
    assert result.stdout.count("retained accuracy (RA)") == 3
    assert "seeds 0-2 (3 runs): RA " in result.stdout and "+/-" in result.stdout


def test_seeds_the_batched_form_does_not_hold_for_run_one_after_another_saying_why(data_dir, tmp_path):
    store = tmp_path / "runs.sqlite"
    result = run_lamaml("run", "--seeds", "0,2", "--jobs", "1", *TINY, "--set", "fast_path=false", "--set",
                        "glances=1", "--out", tmp_path, "--store", store, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    note = [line for line in result.stderr.splitlines() if line.startswith("lamaml: note: --seeds:")]
    assert len(note) == 1 and note[0].endswith("running the 2 seeds one after another"), result.stderr
    assert "autograd backend" in note[0]
    assert all((tmp_path / f"seed{k}" / "metrics.json").exists() for k in (0, 2))
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT seed FROM runs WHERE status='done' ORDER BY seed").fetchall() == [(0,), (2,)]


def test_seeds_are_refused_with_options_that_work_on_one_run(data_dir, tmp_path):
    result = run_lamaml("run", "--seeds", "0-1", "--checkpoint-every", "1", "--out", tmp_path, data_dir=data_dir)
    assert result.returncode == 2
    assert result.stderr.strip() == ("lamaml: --seeds runs several seeds; --resume, --checkpoint-every, --dry-run "
                                     "and --estimate work on one run: give --seed instead")


def test_one_seed_is_the_plain_run_of_that_seed(data_dir, tmp_path):
    result = run_lamaml("run", "--seeds", "3", "--tasks", "1", "--set", "samples_per_task=20", "--quiet",
                        "--out", tmp_path / "seeds", data_dir=data_dir)
    plain = run_lamaml("run", "--seed", "3", "--tasks", "1", "--set", "samples_per_task=20", "--quiet",
                       "--out", tmp_path / "plain", data_dir=data_dir)
    assert result.returncode == plain.returncode == 0 and result.stderr == "", result.stderr
    seeded, alone = (json.loads((tmp_path / where / "metrics.json").read_text()) for where in ("seeds/seed3", "plain"))
    assert seeded["acc_matrix"] == alone["acc_matrix"] and seeded["task_losses"] == alone["task_losses"]


def test_a_sweep_with_batch_seeds_records_what_run_seeds_records_and_skips_what_is_done(data_dir, tmp_path):
    store = tmp_path / "runs.sqlite"
    args = ["sweep", "--benchmarks", "mnist-rotations", "--methods", "la-maml,er", "--tasks", "2",
            "--set", "samples_per_task=30", "--store", store, "--jobs", "1"]
    first = run_lamaml(*args, "--seeds", "1", data_dir=data_dir)          # seed 1 alone, not batched
    assert first.returncode == 0, first.stderr
    result = run_lamaml(*args, "--seeds", "0-2", "--batch-seeds", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "6 combinations, 2 already done, 4 to run" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  [")]
    assert sum("(one of 2 seeds trained as one computation)" in line for line in lines) == 2    # la-maml 0, 2
    assert sum("trained as one computation" not in line for line in lines) == 2                 # er: one by one
    batched = run_lamaml("run", "--seeds", "0,2", "--tasks", "2", "--set", "samples_per_task=30",
                         "--store", tmp_path / "seeds.sqlite", "--quiet", data_dir=data_dir)
    assert batched.returncode == 0, batched.stderr
    with sqlite3.connect(store) as swept, sqlite3.connect(tmp_path / "seeds.sqlite") as alone:
        query = "SELECT seed, status, ra FROM runs WHERE method='la-maml' ORDER BY seed"
        assert [row for row in swept.execute(query) if row[0] != 1] == alone.execute(query).fetchall()
        assert swept.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone() == (6,)
    refused = run_lamaml(*args, "--batch-seeds", "--checkpoint-every", "1", data_dir=data_dir)
    assert refused.returncode == 2 and "--batch-seeds trains seeds together" in refused.stderr


def test_a_sweeps_seed_groups_are_halved_until_every_job_has_one():
    from lamaml.experiments.sweep import seed_groups
    la_maml = [{"method": "la-maml", "seed": seed} for seed in range(5)]
    er = [{"method": "er", "seed": seed} for seed in range(2)]
    seeds = lambda groups: [[c["seed"] for c in group] for group in groups]  # noqa: E731
    assert seeds(seed_groups(la_maml)) == [[0, 1, 2, 3, 4]]
    assert seeds(seed_groups(la_maml, jobs=2)) == [[0, 1, 2], [3, 4]]          # two cores: 3 and 2 side by side
    assert seeds(seed_groups(la_maml, jobs=3)) == [[0, 1], [2], [3, 4]]
    assert seeds(seed_groups(la_maml, jobs=8)) == [[0], [1], [2], [3], [4]]   # never emptier than one seed
    assert seeds(seed_groups(la_maml + er, jobs=2)) == [[0, 1, 2, 3, 4], [0, 1]]   # enough groups already
    assert seeds(seed_groups(er + la_maml, jobs=3)) == [[0, 1], [0, 1, 2], [3, 4]]
    assert seed_groups([], jobs=4) == []



def test_seeds_split_over_worker_processes_equal_the_one_process_run(data_dir, tmp_path):
    """--jobs 2: seeds 0-1 batched in one worker, seed 2 alone in another, side by side; each seed's
    metrics and store row as in one process (and so as its separate run), the summary in seed order."""
    runs = {}
    for jobs in (1, 2):
        store = tmp_path / f"jobs{jobs}.sqlite"
        result = run_lamaml("run", "--seeds", "0-2", "--jobs", jobs, *TINY, "--out", tmp_path / f"jobs{jobs}",
                            "--store", store, data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(store) as conn:
            rows = conn.execute("SELECT seed, status, ra FROM runs ORDER BY seed").fetchall()
        metrics = [json.loads((tmp_path / f"jobs{jobs}" / f"seed{k}" / "metrics.json").read_text()) for k in range(3)]
        runs[jobs] = result, rows, metrics
    (one, rows_one, metrics_one), (two, rows_two, metrics_two) = runs[1], runs[2]
    assert two.stderr.strip() == "lamaml: note: --seeds: 3 seeds in 2 processes side by side: seeds 0,1 and 2"
    assert rows_two == rows_one and [r[1] for r in rows_two] == ["done"] * 3
    for split, together in zip(metrics_two, metrics_one):
        assert split["acc_matrix"] == together["acc_matrix"] and split["task_losses"] == together["task_losses"]
    assert two.stdout.count("retained accuracy (RA)") == 3
    assert two.stdout.splitlines()[-2] == one.stdout.splitlines()[-2]        # the same mean +/- std line


def test_how_many_processes_seeds_train_in(monkeypatch):
    import torch

    from lamaml.config import resolve_config
    from lamaml.experiments.seeds import seed_processes
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    mnist = resolve_config("mnist-rotations", "la-maml", {})
    assert seed_processes(mnist, 5) == 2                 # an MLP on one thread: one process per core it may use
    assert seed_processes(mnist, 1) == 1
    assert seed_processes(mnist, 5, jobs=3) == 3 and seed_processes(mnist, 2, jobs=8) == 2
    assert seed_processes(mnist.model_copy(update={"train_threads": 2}), 5) == 1
    assert seed_processes(mnist.model_copy(update={"device": "cuda"}), 5) == 1     # one batch on a GPU
    assert seed_processes(resolve_config("cifar100", "la-maml", {}), 5) == 1       # a conv net takes every core


def test_a_seed_worker_killed_from_outside_ends_in_one_line_naming_the_seeds_without_results(data_dir, tmp_path):
    """Seed 2 trains alone in its worker, which is killed at its third batch: the pool breaks, and the
    run says which seeds have no results, without a traceback."""
    result = run_lamaml("run", "--seeds", "0-2", "--jobs", "2", *TINY, "--out", tmp_path, data_dir=data_dir,
                        fault="batch:3")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lamaml: a worker process of --seeds was killed (out of memory, or by a signal): "
                           "seeds ") and last.endswith(" have no results; run them again"), result.stderr
    assert "2" in last.rsplit("seeds ", 1)[1] and "Traceback" not in result.stderr
    assert not (tmp_path / "seed2" / "metrics.json").exists()
