"""Exported runs files (docs/results/*-runs.csv) restore a store: `lamaml runs --import`."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lamaml.config import resolve_config
from lamaml.errors import UserError
from lamaml.experiments.exported import import_runs, parse_settings
from lamaml.experiments.reproduce.table2_report import TABLE2_RUN_COLUMNS
from lamaml.experiments.reproduce.tables import commits_line, csv_text, run_row
from lamaml.experiments.store import Store, config_hash

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _finished(store, seed, ra):
    """A run of table2's kind finished in ``store``: its config and the metrics a table reads."""
    config = resolve_config("tinyimagenet", "la-maml", {"samples_per_task": 50, "alpha_init": 0.125,
                                                        "train_threads": 1}, seed=seed, tasks=2).model_dump()
    metrics = {"train_threads_used": [1], "ra": ra, "bti": -1.23456, "test": {"ra": ra + 1, "bti": -2.5}, "learning_accuracy": 50.0,
               "train_time_s": 12.3456, "eval_time_s": 1.5, "code_commit": "abc1234", "config": config,
               "benchmark": "tinyimagenet", "method": "la-maml", "seed": seed}
    store.finish(store.start(config), metrics)
    return config, metrics


def _export(metrics_list, path):
    path.write_text(csv_text([run_row(m, m["benchmark"], m["method"]) for m in metrics_list], TABLE2_RUN_COLUMNS))


def test_a_run_exported_and_imported_is_done_in_the_new_store_with_its_numbers(tmp_path):
    old = Store(tmp_path / "old.sqlite")
    runs = [_finished(old, seed, ra) for seed, ra in ((0, 41.91876), (2, 40.0))]
    _export([metrics for _, metrics in runs], tmp_path / "t-runs.csv")
    new = Store(tmp_path / "new.sqlite")
    assert import_runs(new, tmp_path / "t-runs.csv") == (2, 0)
    assert new.done_hashes() == {config_hash(config) for config, _ in runs}
    restored = {row["seed"]: row for row in new.query(["status=done"])}
    second = json.loads(restored[2]["config"])
    assert second == runs[1][0]                       # the full config, defaults included
    metrics = json.loads(restored[0]["metrics"])
    assert metrics["ra"] == 41.9188 and metrics["bti"] == -1.2346 and metrics["test"] == {"ra": 42.9188, "bti": -2.5}
    assert metrics["code_commit"] == "abc1234" and metrics["imported_from"] == "t-runs.csv"
    assert restored[0]["host"] == "imported"
    assert import_runs(new, tmp_path / "t-runs.csv") == (0, 2)   # a second import adds nothing


def test_a_run_on_two_threads_exports_its_thread_count_and_imports_as_the_same_cell(tmp_path):
    """train_threads is in the settings (its time was two threads') but not in the hash (the cell's identity)."""
    old = Store(tmp_path / "old.sqlite")
    config, metrics = _finished(old, 0, 40.0)
    metrics["config"] = {**config, "train_threads": 2}
    _export([metrics], tmp_path / "t-runs.csv")
    (row,) = csv.DictReader((tmp_path / "t-runs.csv").open())
    assert "train_threads=2" in row["settings"].split() and row["config_hash"] == config_hash(config)
    new = Store(tmp_path / "new.sqlite")
    assert import_runs(new, tmp_path / "t-runs.csv") == (1, 0)
    (restored,) = new.query(["status=done"])
    assert json.loads(restored["config"])["train_threads"] == 2 and new.done_hashes() == {config_hash(config)}


def test_restored_runs_export_the_same_rows_again(tmp_path):
    """The table rebuilt from a restored store writes the rows it was restored from, identity included."""
    old = Store(tmp_path / "old.sqlite")
    first = [_finished(old, seed, 40.0 + seed) for seed in (0, 1)]
    _export([metrics for _, metrics in first], tmp_path / "t-runs.csv")
    new = Store(tmp_path / "new.sqlite")
    import_runs(new, tmp_path / "t-runs.csv")
    _export([json.loads(row["metrics"]) for row in new.query(["status=done"])], tmp_path / "again-runs.csv")
    assert (tmp_path / "again-runs.csv").read_text() == (tmp_path / "t-runs.csv").read_text()


def test_a_table_says_which_of_its_runs_were_restored(tmp_path):
    old = Store(tmp_path / "old.sqlite")
    _, measured = _finished(old, 0, 40.0)
    restored = dict(measured, seed=1, imported_from="t-runs.csv", config=dict(measured["config"], seed=1))
    line = commits_line({("c", "la-maml"): [measured, restored]})
    assert "1 of the 2 runs were restored" in line and "`t-runs.csv`" in line
    assert "restored" not in commits_line({("c", "la-maml"): [measured]})


def test_a_row_whose_settings_were_edited_is_refused_naming_its_line(tmp_path):
    old = Store(tmp_path / "old.sqlite")
    _export([_finished(old, 0, 40.0)[1]], tmp_path / "t-runs.csv")
    text = (tmp_path / "t-runs.csv").read_text().replace("params.alpha_init=0.125", "params.alpha_init=0.25")
    (tmp_path / "t-runs.csv").write_text(text)
    store = Store(tmp_path / "new.sqlite")
    with pytest.raises(UserError, match=r"t-runs.csv:2: its settings hash to \w+, not the row's config_hash"):
        import_runs(store, tmp_path / "t-runs.csv")
    assert store.query() == []                          # nothing written when a row is refused


def test_settings_values_with_spaces_and_strings_parse_back():
    assert parse_settings('glances=5 model=pc-cnn params.widths=[1, 2] params.lr=0.03 tasks=5') == \
        {"glances": 5, "model": "pc-cnn", "tasks": 5, "params": {"widths": [1, 2], "lr": 0.03}}
    assert parse_settings("") == {"params": {}}


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*-runs.csv")))
def test_every_committed_runs_file_imports_whole(tmp_path, name):
    with open(RESULTS / name, newline="") as handle:
        rows = len(list(csv.DictReader(handle)))
    store = Store(tmp_path / "s.sqlite")
    assert import_runs(store, RESULTS / name) == (rows, 0)
    # Files exported when one thread was the default name no train_threads: their runs read as one thread
    threads = {json.loads(row["config"])["train_threads"] for row in store.query(["status=done"])}
    assert threads <= {1, 2} and (1 in threads)


def test_a_row_exported_when_one_thread_was_the_default_imports_as_one_thread(tmp_path):
    """Before train_threads defaulted to "auto", a one-thread run's settings left it out; imported today it
    must not read as "auto" (which a table cannot count) but as the one thread it had."""
    old = Store(tmp_path / "old.sqlite")
    _, metrics = _finished(old, 0, 40.0)
    del metrics["train_threads_used"]
    metrics["config"] = {**metrics["config"], "train_threads": "auto"}    # as settings_text left it out then
    _export([metrics], tmp_path / "t-runs.csv")
    (row,) = csv.DictReader((tmp_path / "t-runs.csv").open())
    assert "train_threads" not in row["settings"] and row["train_threads_used"] == ""
    new = Store(tmp_path / "new.sqlite")
    assert import_runs(new, tmp_path / "t-runs.csv") == (1, 0)
    (restored,) = new.query(["status=done"])
    assert json.loads(restored["config"])["train_threads"] == 1


def test_runs_import_on_the_command_line(tmp_path):
    old = Store(tmp_path / "old.sqlite")
    _export([_finished(old, 0, 40.0)[1]], tmp_path / "t-runs.csv")
    done = subprocess.run([sys.executable, "-m", "lamaml", "runs", "--store", str(tmp_path / "new.sqlite"),
                           "--import", str(tmp_path / "t-runs.csv")], capture_output=True, text=True)
    assert done.returncode == 0 and "1 run(s) imported" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "lamaml", "runs", "--store", str(tmp_path / "new.sqlite"),
                              "--import", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr and "Traceback" not in missing.stderr


def test_reproduce_names_the_import_that_would_spare_rerunning_a_tables_committed_runs(tmp_path, capsys):
    from lamaml.cli import _note_restorable
    old = Store(tmp_path / "old.sqlite")
    _export([_finished(old, seed, 40.0)[1] for seed in (0, 1)], tmp_path / "t-runs.csv")
    _note_restorable(tmp_path / "out", tmp_path / "t.md")          # no store there yet: both runs missing
    note = capsys.readouterr().err
    assert "holds 2 finished run(s)" in note and f"--import {tmp_path / 't-runs.csv'}" in note
    import_runs(Store(tmp_path / "out" / "results.sqlite"), tmp_path / "t-runs.csv")
    _note_restorable(tmp_path / "out", tmp_path / "t.md")          # restored: nothing to say
    assert capsys.readouterr().err == ""


def test_runs_export_writes_the_finished_runs_a_filter_selects_and_import_reads_them_back(tmp_path):
    old = Store(tmp_path / "old.sqlite")
    configs = [_finished(old, seed, 40.0 + seed)[0] for seed in (0, 1, 2)]
    old.start(dict(configs[0], seed=3))                                   # running: never exported
    lamaml = [sys.executable, "-m", "lamaml", "runs", "--store"]
    done = subprocess.run(lamaml + [str(tmp_path / "old.sqlite"), "--where", "seed<=1", "--export",
                                    str(tmp_path / "two-runs.csv")], capture_output=True, text=True)
    assert done.returncode == 0 and "2 finished run(s)" in done.stdout
    with open(tmp_path / "two-runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["seed"], r["ra"], r["test_ra"]) for r in rows] == [("0", "40.0000", "41.0000"), ("1", "41.0000", "42.0000")]
    new = Store(tmp_path / "new.sqlite")
    assert import_runs(new, tmp_path / "two-runs.csv") == (2, 0)
    assert new.done_hashes() == {config_hash(c) for c in configs[:2]}


def test_a_run_resumed_by_other_code_and_threads_keeps_that_through_export_and_import(tmp_path):
    """A run trained in several processes names each one's code and thread count in its row, and a table
    rebuilt from the imported row still marks its time and names every commit (not 'clean' when part of its
    training ran code no record names)."""
    from lamaml.experiments.reproduce.tables import threads_mark
    old = Store(tmp_path / "old.sqlite")
    config, metrics = _finished(old, 0, 40.0)
    metrics.update(code_used=["unrecorded", "0.1.0 abc1234+dirty", "0.1.0 def5678"], code_commit="def5678",
                   train_threads_used=[1, 2], resumed=True)
    _export([metrics], tmp_path / "t-runs.csv")
    new = Store(tmp_path / "new.sqlite")
    assert import_runs(new, tmp_path / "t-runs.csv") == (1, 0)
    restored = json.loads(new.query(["status=done"])[0]["metrics"])
    assert restored["code_used"] == metrics["code_used"] and restored["train_threads_used"] == [1, 2]
    assert restored["resumed"] is True and restored["config"]["train_threads"] == 1
    assert threads_mark([restored]) == " (1/2 threads)"
    for run in (metrics, restored):
        line = commits_line({("c", "la-maml"): [run]})
        assert "clean" not in line and line.startswith("**Warning: 1 of 1 runs ran uncommitted code (+dirty)")
        assert "1 of 1 runs resumed from checkpoints that did not record their code" in line
        assert "abc1234+dirty (1 run), def5678 (1 run), unrecorded (1 run)" in line


def test_a_run_resumed_by_two_clean_commits_counts_under_both():
    one = {"code_commit": "aaa", "config": {"benchmark": "b", "method": "m", "seed": 0}}
    two = {"code_commit": "bbb", "code_used": ["0.1.0 aaa", "0.1.0 bbb"], "config": {"benchmark": "b", "method": "m",
                                                                                      "seed": 1}}
    assert commits_line({("c", "m"): [one, two]}) == (
        "All 2 runs ran clean commits: aaa (2 runs), bbb (1 run). 1 of them trained in several processes with "
        "different code (resumed from its checkpoints), counted under each commit it ran.")
