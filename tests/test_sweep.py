import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO
from lamaml.errors import UserError
from lamaml.experiments.report import render, summarize_runs
from lamaml.experiments.store import Store, config_hash
from lamaml.cli import main
from lamaml.experiments.sweep import SweepSpec, check_data, combinations, load_spec, progress_label

SWEEP = ["--benchmarks", "mnist-rotations", "--methods", "la-maml,c-maml", "--seeds", "0-1",
         "--grid", "opt_lr=0.1,0.3", "--tasks", "2", "--set", "samples_per_task=30", "--jobs", "2"]
COMPARED = ("ra", "bti", "acc_matrix", "task_losses")


def sweep(store, *extra, data_dir, wait=True):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    command = [sys.executable, "-m", "lamaml.cli", "sweep", *SWEEP, "--store", str(store), *extra]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO,
                            start_new_session=True)


def done_metrics(store):
    rows = Store(store).query(["status=done"])
    return {r["config_hash"]: {k: json.loads(r["metrics"])[k] for k in COMPARED} for r in rows}, rows


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    store = tmp_path_factory.mktemp("ref") / "runs.sqlite"
    result = sweep(store, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    metrics, rows = done_metrics(store)
    assert len(rows) == len(metrics) == 6          # c-maml has no opt_lr: 2 seeds, la-maml 2 x 2
    progress = [line for line in result.stderr.splitlines() if line.startswith("  [")]
    assert len(progress) == 6 and "/6] mnist-rotations la-maml opt_lr=0.3 seed 1: RA " in result.stderr
    assert "/6] mnist-rotations c-maml seed 0: RA " in result.stderr   # one setting of c-maml: nothing to name
    return metrics


def test_a_killed_sweep_resumes_and_runs_every_combination_exactly_once(reference, data_dir, tmp_path):
    store = tmp_path / "runs.sqlite"
    process = sweep(store, data_dir=data_dir, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline:
        if store.exists() and len(Store(store).query(["status=done"])) >= 2:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)         # the whole sweep: parent and workers
    process.wait()
    assert len(Store(store).query(["status=done"])) < 6, "the sweep finished before it could be killed"
    result = sweep(store, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    metrics, rows = done_metrics(store)
    assert len(rows) == 6 and metrics == reference


def test_the_ray_engine_gives_the_same_numbers_as_the_local_one(reference, data_dir, tmp_path):
    import ray  # noqa: F401  (the README test command installs the ray extra; a missing Ray must fail, not skip)
    store = tmp_path / "ray.sqlite"
    result = sweep(store, "--engine", "ray", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert done_metrics(store)[0] == reference


def _record(store, method, seed, ra, bti, **params):
    config = {"benchmark": "mnist-rotations", "method": method, "seed": seed, "glances": 5,
              "params": {"alpha_init": 0.15, **params}}
    store.finish(store.start(config), {"ra": ra, "bti": bti, "train_time_s": 10.0 + seed})


def test_report_gives_hand_checkable_means_and_sample_stds(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, (ra, bti) in enumerate([(70.0, -10.0), (72.0, -8.0), (77.0, -9.0)]):
        _record(store, "la-maml", seed, ra, bti, opt_lr=0.3)
    _record(store, "la-maml", 0, 60.0, -1.0, opt_lr=0.1)
    store.fail(store.start({"benchmark": "mnist-rotations", "method": "la-maml", "seed": 9, "params": {}}), "boom")
    rows = summarize_runs(store.query())
    assert [(r["settings"], r["seeds"]) for r in rows] == [("opt_lr=0.1", 1), ("opt_lr=0.3", 3)]
    group = rows[1]
    assert group["ra"][0] == pytest.approx(73.0) and group["ra"][1] == pytest.approx(13 ** 0.5)   # sqrt(26/2)
    assert group["bti"] == pytest.approx((-9.0, 1.0)) and group["train_time_s"] == pytest.approx((11.0, 1.0))
    assert group["paper_ra"] == (77.42, 0.65)
    markdown = render(rows, "markdown")
    assert "| mnist-rotations | la-maml | opt_lr=0.3 | 3 | 73.00 +/- 3.61 | 77.42 +/- 0.65 | -9.00 +/- 1.00 |" in markdown
    assert "73.0,3.605551" in render(rows, "csv")
    assert r"73.00 $\pm$ 3.61" in render(rows, "latex")


def test_a_sweep_file_is_validated_before_anything_runs(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("benchmarks: [mnist-rotations]\nmethods: [la-maml, c-maml]\nseeds: 0-2\n"
                    "grid: {alpha_init: [0.1, 0.2], opt_lr: [0.1]}\nset: {samples_per_task: 20}\ntasks: 2\n")
    configs = combinations(load_spec(good))
    assert len(configs) == 2 * 3 + 2 * 3            # c-maml ignores opt_lr but sweeps alpha_init
    assert len({config_hash(c.model_dump()) for c in configs}) == len(configs)
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks: [mnist-rotations]\nmethods: [la-maml]\ngrid: {glances: [0]}\n")
    with pytest.raises(UserError, match="--set glances=0|glances must be"):
        combinations(load_spec(bad))
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text("benchmarks: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(UserError, match="cannot read the sweep file"):
        load_spec(hostile)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match="unknown method .nope.; choose from"):
        combinations(SweepSpec.model_validate({"benchmarks": ["mnist-rotations"], "methods": ["nope"]}))


def test_table1_marks_cells_by_the_rule_and_explains_the_ones_that_miss(monkeypatch):
    import lamaml.experiments.reproduce.table1 as table1
    monkeypatch.setattr(table1, "table1_notes", lambda: {"mnist-rotations": {"online": "a  documented\n reason"}})
    run = lambda ra, bti, t: {"ra": ra, "bti": bti, "train_time_s": t, "code_commit": "abc"}  # noqa: E731
    cells = {("mnist-rotations", "online"): [run(49.0, -5.0, 3.0), run(50.0, -6.0, 3.0)],     # 3.88 off, > 2 stds
             ("mnist-rotations", "ewc"): [run(58.0, -20.0, 5.0)],
             ("mnist-rotations", "gem"): [run(67.0, -18.0, 9.0)],
             ("mnist-rotations", "mer"): [run(77.0, -9.0, 180.0)],                             # BTI 3.4 off
             ("mnist-rotations", "la-maml"): [run(77.5, -8.5, 30.0), run(77.3, -8.7, 30.0)]}
    table = table1.table1_markdown(cells, 2, "lamaml reproduce table1")
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| mnist-rotations")}
    assert "| 49.50 +/- 0.71 | 53.38 +/- 1.53 | **no** |" in rows["online"]
    assert "| 77.40 +/- 0.14 | 77.42 +/- 0.65 | yes |" in rows["la-maml"] and rows["la-maml"].endswith("| 1.0 |")
    assert rows["mer"].endswith("| 180 s | 6.0 |")
    assert "- **mnist-rotations / online** (RA): a documented reason" in table
    assert "- **mnist-rotations / mer** (BTI): open question" in table
    assert "La-MAML's RA 77.40 is above Online's, EWC's and GEM's;" in table
    assert "MER trains 6.0x as long as La-MAML" in table


def _refused(argv, capsys):
    """Exit status and the stderr lines of ``lamaml sweep ARGV``."""
    status = main(["sweep", *argv])
    return status, capsys.readouterr().err.splitlines()


def test_a_misspelt_grid_key_stops_the_sweep_naming_it_and_the_closest_name(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    status, err = _refused(["--benchmarks", "mnist-rotations", "--methods", "la-maml,c-maml", "--grid",
                            "alpah_init=0.1,0.3", "--store", str(store)], capsys)
    assert status == 2 and len(err) == 1, err
    assert "grid key 'alpah_init'" in err[0] and err[0].endswith("did you mean alpha_init?")
    assert not store.exists()
    status, err = _refused(["--benchmarks", "mnist-rotations", "--methods", "la-maml", "--grid", "opt_wt=0.1",
                            "--store", str(store)], capsys)
    assert status == 2 and "opt_wt" in err[0] and "c-maml, sync-la-maml, vr-mcl only" in err[0]
    spec = SweepSpec(benchmarks=["mnist-rotations"], methods=["la-maml", "c-maml"], grid={"opt_lr": [0.1, 0.3]})
    assert len(combinations(spec)) == 3             # a key of some of the methods only is no mistake


def test_flags_given_with_a_sweep_file_replace_those_parts_of_it(tmp_path, monkeypatch):
    import lamaml.experiments.sweep as sweep_module
    given = []
    monkeypatch.setattr(sweep_module, "run_sweep", lambda spec, *rest, **options: given.append(spec) or [])
    path = tmp_path / "f.yaml"
    path.write_text("benchmarks: [mnist-rotations]\nmethods: [la-maml, c-maml]\nseeds: 0-2\n"
                    "grid: {alpha_init: [0.1, 0.2], opt_lr: [0.1, 0.3]}\nset: {samples_per_task: 20}\ntasks: 2\n")
    assert main(["sweep", "--file", str(path), "--methods", "er", "--seeds", "5", "--set", "alpha_init=0.3",
                 "--grid", "samples_per_task=10,30"]) == 0
    spec = given[0]
    assert (spec.benchmarks, spec.methods, spec.seeds, spec.tasks) == (["mnist-rotations"], ["er"], [5], 2)
    assert spec.grid == {"opt_lr": [0.1, 0.3], "samples_per_task": [10, 30]} and spec.set == {"alpha_init": "0.3"}
    assert main(["sweep", "--file", str(path)]) == 0 and given[1] == load_spec(path)


def test_a_sweep_without_its_data_stops_once_before_any_run(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    status, err = _refused(["--benchmarks", "mnist-rotations,mnist-permutations", "--methods", "online,er",
                            "--data-dir", str(tmp_path / "empty"), "--store", str(store)], capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("lamaml: sweep: mnist-permutations: MNIST file ") and "no run was started" in err[0]
    assert Store(store).query() == []
    with pytest.raises(UserError, match="sweep: cifar100: CIFAR-100 not found: looked for .*; no run was started"):
        check_data({"cifar100"}, str(tmp_path / "empty"))


def test_the_driver_fetches_missing_data_once_where_downloads_are_allowed(tmp_path, monkeypatch):
    import lamaml.data.mnist as mnist
    fetched = []
    monkeypatch.delenv("LAMAML_NO_DOWNLOAD")
    monkeypatch.setattr(mnist, "download", lambda urls, target, digest: fetched.append(target) or
                        (target.parent.mkdir(parents=True, exist_ok=True), target.write_bytes(b"idx")))
    check_data({"mnist-rotations", "mnist-many-permutations"}, str(tmp_path))
    assert sorted(p.name for p in fetched) == sorted(f"{name}.gz" for name in mnist.FILES)
    with pytest.raises(UserError, match="sweep: tinyimagenet: Tiny ImageNet-200 not found"):
        check_data({"tinyimagenet"}, str(tmp_path))


def test_progress_lines_name_the_settings_that_vary_in_the_sweep(capsys):
    from lamaml.experiments.sweep_lines import SweepLines
    spec = SweepSpec(benchmarks=["mnist-rotations"], methods=["la-maml", "c-maml"], seeds=[0, 1],
                     grid={"opt_lr": [0.1, 0.3]})
    configs = [c.model_dump() for c in combinations(spec)]
    label = progress_label(configs)
    assert sorted(map(label, configs)) == [
        "mnist-rotations c-maml seed 0", "mnist-rotations c-maml seed 1",
        "mnist-rotations la-maml opt_lr=0.1 seed 0", "mnist-rotations la-maml opt_lr=0.1 seed 1",
        "mnist-rotations la-maml opt_lr=0.3 seed 0", "mnist-rotations la-maml opt_lr=0.3 seed 1"]
    report = SweepLines(3, label)
    report.start -= 60                                  # the first run took a minute
    report({"status": "done", "ra": 76.123, "config": configs[1], "seconds": 60.0})
    assert capsys.readouterr().err == f"  [1/3] {label(configs[1])}: RA 76.12; about 2 min left\n"
    report({"status": "done", "ra": 70.0, "config": configs[0]})
    report({"status": "done", "ra": 71.0, "config": configs[2]})
    assert capsys.readouterr().err.splitlines()[-1] == f"  [3/3] {label(configs[2])}: RA 71.00"


def test_the_time_left_weighs_the_runs_still_to_go_by_their_projected_times(capsys):
    from lamaml.experiments.sweep_lines import SweepLines
    short, long_, longer = ({"benchmark": "b", "method": m, "seed": 0} for m in ("er", "mer", "iid"))
    expected = {config_hash(short): 60.0, config_hash(long_): 3600.0, config_hash(longer): 7200.0}
    report = SweepLines(3, None, expected)
    report.start -= 120                     # the short run, projected at 1 min, took 2: twice the projection
    report({"status": "done", "ra": 50.0, "config": short, "seconds": 120.0})
    assert capsys.readouterr().err.endswith("; about 6.0 h left\n")     # (1 + 2 h) x 2, not 2 runs x 2 min
    naive = SweepLines(3, None)
    naive.start -= 120
    naive({"status": "done", "ra": 50.0, "config": short, "seconds": 120.0})
    assert capsys.readouterr().err.endswith("; about 4 min left\n")


def test_the_time_left_counts_the_runs_in_flight_on_parallel_jobs_and_not_the_skipped_ones(capsys):
    """8 runs of 1 h on 4 jobs end at 1 h and 2 h: the first line says 1 h left (not 7 h), the fifth about
    nothing; runs another sweep did leave the count without speeding the pace."""
    from lamaml.experiments.sweep_lines import SweepLines
    configs = [{"benchmark": "b", "method": "er", "seed": k} for k in range(8)]
    lines = []

    def finish(report, config, seconds, status="done"):
        report({"status": status, "ra": 50.0, "reason": "done elsewhere", "config": config, "seconds": seconds})
        lines.append(capsys.readouterr().err)
    report = SweepLines(8, None, {config_hash(c): 3600.0 for c in configs}, jobs=4)
    report.start -= 3600
    finish(report, configs[0], 3600.0)
    assert lines[-1].endswith("; about 60 min left\n")
    for config in configs[1:4]:
        finish(report, config, 3600.0)
    assert lines[-1].endswith("; about 60 min left\n")
    report.start -= 3600
    finish(report, configs[4], 3600.0)
    assert lines[-1].endswith("; about 0 s left\n")
    one_job = SweepLines(4, None, {config_hash(c): 3600.0 for c in configs[:4]}, jobs=1)
    finish(one_job, configs[0], 0.01, status="skipped")
    assert lines[-1].endswith("; about 3.0 h left\n")                  # not 3 s: a skip sets no pace
    one_job.start -= 3600
    finish(one_job, configs[1], 3600.0)
    assert lines[-1].endswith("; about 2.0 h left\n")


def test_each_job_gets_its_share_of_the_threads_this_process_may_use(monkeypatch):
    from lamaml.experiments.sweep import threads_per_job
    threads = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    try:
        torch.set_num_threads(8)
        assert [threads_per_job(j) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
        torch.set_num_threads(1)            # OMP_NUM_THREADS=1: a sweep beside other work
        assert threads_per_job(1) == 1
    finally:
        torch.set_num_threads(threads)


def test_fewer_runs_than_jobs_share_the_cores_between_them(data_dir, tmp_path, monkeypatch):
    import lamaml.experiments.sweep as sweep
    seen = []
    monkeypatch.setattr(sweep, "dispatch", lambda engine, jobs_of, store, data, threads, *a, **k: seen.append(threads)
                        or [])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    spec = SweepSpec(benchmarks=["mnist-rotations"], methods=["online"], set={"samples_per_task": 20})
    sweep.run_sweep(spec, tmp_path / "runs.sqlite", 8, str(data_dir))
    sweep.run_sweep(SweepSpec(**{**spec.model_dump(), "seeds": [0, 1]}), tmp_path / "runs.sqlite", 8, str(data_dir))
    assert seen == [8, 4]           # one run: every core; two: four each (not 8 // 8 = 1 on 7 idle cores)


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"train_threads": [1, 2]}}, "grid key 'train_threads' is not part of a run's identity"),
    ({"grid": {"lr": [0.1, 0.2]}, "set": {"lr": 0.3}}, "grid and set both give lr: sweep it or fix it"),
    ({"set": {"seed": 3}}, "the seeds are the sweep's own"),
    ({"grid": {"lr": [0.1, "abc"]}}, "--grid lr=abc: "),
])
def test_sweep_inputs_that_would_run_something_else_than_asked_are_refused(spec, message):
    with pytest.raises(UserError, match=message):
        combinations(SweepSpec(benchmarks=["mnist-rotations"], methods=["online"], **spec))


def test_a_reversed_seed_range_is_named():
    from lamaml.experiments.sweep import parse_seeds
    with pytest.raises(UserError, match="--seeds 4-0: a range goes up, e.g. 0-4"):
        parse_seeds("4-0")
    assert parse_seeds("0,2,5") == [0, 2, 5] and parse_seeds("3-5") == [3, 4, 5]


def test_runs_import_with_export_and_run_resume_with_estimate_are_refused(tmp_path, capsys, monkeypatch):
    assert main(["runs", "--store", str(tmp_path / "s.sqlite"), "--import", "x.csv", "--export", "y.csv"]) == 2
    assert "--import restores exported rows into the store; run --export or --where" in capsys.readouterr().err
    import lamaml.experiments.runs
    monkeypatch.setattr(lamaml.experiments.runs, "resume_point", lambda out: ({"config": {}}, []))
    assert main(["run", "--resume", str(tmp_path), "--estimate"]) == 2
    assert "--estimate and --dry-run project a whole run from its start" in capsys.readouterr().err
