"""`lamaml report` and `lamaml runs`: the paper's number only beside the paper's protocol, one seed
shown as one seed, and the settings and errors that tell listed runs apart."""
import pytest

from lamaml.config import resolve_config
from lamaml.experiments.report import paper_cell, render, runs_table, summarize_runs
from lamaml.experiments.store import Store

from test_cli import lamaml

PAPER_RA = "77.42 +/- 0.65"     # la-maml on mnist-rotations, Table 1


def _record(store, config, ra, bti=-8.0, train_time_s=10.0):
    store.finish(store.start(config), {"ra": ra, "bti": bti, "train_time_s": train_time_s})


def _config(method="la-maml", benchmark="mnist-rotations", seed=0, **explicit):
    overrides = {k: v for k, v in explicit.items() if k not in ("tasks", "setting")}
    return resolve_config(benchmark, method, overrides, seed=seed, tasks=explicit.get("tasks"),
                          setting=explicit.get("setting")).model_dump()


def test_the_paper_cell_stands_only_beside_the_papers_protocol():
    assert paper_cell(_config())[0]["ra"] == [77.42, 0.65]
    assert paper_cell(_config(tasks=20, device="auto", evaluate="seen"))[1] is None   # all 20 named; not protocol
    assert paper_cell(_config(fast_path=False))[1] is None     # a computation-only hyperparameter, by its field
    for config, why in [
        (_config(tasks=2), "not the paper's protocol: tasks=2 (paper 20)"),
        (_config(opt_lr=0.1), "not the paper's protocol: opt_lr=0.1 (paper 0.3)"),
        (_config(samples_per_task=50), "samples_per_task=50 (paper 1000)"),
        (_config(setting="multi"), "epochs=10 (paper 1), glances=1 (paper 5), setting=multi (paper single)"),
        (_config("er"), "no paper number for er on mnist-rotations: Table 1 reports online, ewc"),
        (_config(benchmark="cifar100"), "no paper number for cifar100"),
    ]:
        reference, note = paper_cell(config)
        assert reference is None and why in note


def test_report_shows_dashes_with_footnotes_where_the_paper_has_no_comparable_number(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, ra in enumerate([76.0, 78.0]):
        _record(store, _config(seed=seed), ra)
        _record(store, _config(seed=seed, tasks=2), ra - 10)
    _record(store, _config("er"), 70.15)
    table = render(summarize_runs(store.query()), "table")
    lines = table.splitlines()
    two_tasks, full = [line for line in lines if line.startswith("mnist-rotations  la-maml")]
    assert "tasks=null" in full
    assert "77.00 +/- 1.41" in full and PAPER_RA in full
    assert "tasks=2" in two_tasks and PAPER_RA not in two_tasks and two_tasks.count("- [2]") == 2
    er = next(line for line in lines if " er " in line)
    assert "70.15 (n=1)" in er and "+/-" not in er.split("70.15")[1].split("- [1]")[0]
    assert "NOT FOUND" not in table
    assert "[1] no paper number for er on mnist-rotations" in table
    assert "[2] not the paper's protocol: tasks=2 (paper 20)" in table
    csv = render(summarize_runs(store.query()), "csv")
    assert ',1,70.15,,,,-8.0,,,,10.0,,"no paper number for er on mnist-rotations' in csv
    assert r"- [1]" in render(summarize_runs(store.query()), "latex")


def test_one_seed_shows_no_spread():
    rows = [{"status": "done", "config": __import__("json").dumps(_config()), "ra": 70.15, "bti": -8.0,
             "train_time_s": 12.0}]
    text = render(summarize_runs(rows), "markdown")
    assert "| 1 | 70.15 (n=1) | 77.42 +/- 0.65 | -8.00 (n=1) |" in text and "0.00" not in text


def test_runs_lists_the_settings_that_differ_and_why_a_run_failed(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    _record(store, _config(glances=2), 70.0)
    _record(store, _config(glances=3, opt_lr=0.1), 71.0)
    store.fail(store.start(_config(glances=2, seed=1)),
               "the loss became nan at task 3, epoch 0, batch 17: training diverged; lower alpha_init or opt_lr "
               "(the learning rates) or clip the gradients harder")
    text = runs_table(store.query())
    header = text.splitlines()[0].split()
    assert header[-3:] == ["glances", "opt_lr", "error"] and "alpha_init" not in header
    rows = text.splitlines()[1:4]
    assert rows[1].split()[-2:] == ["3", "0.1"]
    assert "the loss became nan at task 3, epoch 0" in rows[2] and "clip the gradients harder" not in rows[2]
    assert rows[2].rstrip().endswith("...")
    assert text.splitlines()[-1] == "3 run(s)"
    same = runs_table(store.query(["status=done", "config.glances=2"]))
    assert same.splitlines()[0].split()[-1] == "started_at"     # one run: nothing differs, nothing failed


def test_report_and_runs_on_the_command_line(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    _record(store, _config(tasks=2), 60.0)
    report = lamaml("report", "--store", path)
    assert report.returncode == 0 and "- [1]" in report.stdout and "60.00 (n=1)" in report.stdout
    assert "[1] not the paper's protocol: tasks=2 (paper 20)" in report.stdout
    bad = lamaml("report", "--store", path, "--where", "config.alpha_init=0.15")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "lamaml: --where 'config.alpha_init=0.15': unknown key 'config.alpha_init'; "
        "did you mean config.params.alpha_init?")


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "latex"])
def test_an_empty_selection_renders_without_footnotes(fmt):
    assert "[1]" not in render([], fmt)


def test_report_shows_aaa_only_when_runs_evaluated_anytime(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, aaa in enumerate([60.0, 64.0]):
        store.finish(store.start(_config("er", seed=seed, eval_every=5)),
                     {"ra": 50.0 + seed, "bti": -1.0, "train_time_s": 3.0, "aaa": aaa})
    store.finish(store.start(_config("er", eval_every=None, seed=0)), {"ra": 40.0, "bti": -1.0, "train_time_s": 3.0})
    text = render(summarize_runs(store.query()), "markdown")
    header, _, *rows = text.splitlines()[:4]
    assert header.endswith("| train time (s) | AAA |")
    anytime = next(r for r in rows if "eval_every=5" in r)
    plain = next(r for r in rows if "eval_every=null" in r)
    assert anytime.endswith("| 62.00 +/- 2.83 |") and plain.endswith("| - |")
    assert render(summarize_runs(store.query(["config.eval_every=null"])), "table").splitlines()[0].endswith(
        "train time (s)")
    csv = render(summarize_runs(store.query()), "csv")
    assert csv.splitlines()[0].endswith(",paper_note,aaa_mean,aaa_std") and ",62.0,2.8284" in csv


def test_a_seed_run_twice_counts_once_as_its_latest_result(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, ra in [(0, 70.0), (1, 80.0), (0, 72.0)]:       # seed 0 again: a rerun, or an import run again
        _record(store, _config(seed=seed, tasks=3), ra)
    (row,) = summarize_runs(store.query())
    assert row["seeds"] == 2 and row["ra"][0] == pytest.approx(76.0) and row["ra"][1] == pytest.approx(5.657, abs=1e-3)


def test_a_run_written_before_a_setting_existed_joins_the_runs_that_name_it_at_its_default(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    _record(store, _config(seed=0, tasks=4), 60.0)
    older = {k: v for k, v in _config(seed=1, tasks=4).items() if k != "deterministic"}
    older["params"] = {k: v for k, v in older["params"].items() if k != "fast_path"}
    _record(store, older, 90.0)
    _record(store, _config(seed=2, tasks=4, deterministic=True), 50.0)    # a setting that differs: its own row
    rows = summarize_runs(store.query())
    assert [(r["settings"], r["seeds"], r["ra"][0]) for r in rows] == [
        ("deterministic=false", 2, pytest.approx(75.0)), ("deterministic=true", 1, pytest.approx(50.0))]
