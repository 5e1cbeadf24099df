"""`lamaml reproduce table2`: the plan of runs, the table built from a hand-made store, its CSV and claims,
the CIFAR-100 path end to end on small files in the official format, and sweep runs that resume from
their checkpoints after a kill."""
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from lamaml.errors import UserError
from lamaml.experiments.reproduce.claims import CLAIM_METRICS, claim_problems
from lamaml.experiments.reproduce.paper import TABLE2_COLUMNS, table2_methods
from lamaml.experiments.reproduce.table2 import choose, reproduce_table2, table2_plan
from lamaml.experiments.reproduce.table2_report import TABLE2_RUN_COLUMNS, table2_claims
from lamaml.experiments.store import Store, config_hash
from lamaml.experiments.sweep import combinations
from test_cifar100 import _py2_pickle

METHODS = ["iid", "er", "mer", "la-maml"]
BASE_RA = {"iid": 80.0, "er": 59.0, "mer": 50.0, "la-maml": 66.0}   # seeds 0, 1, 2 add 0, 1, 2


def _fill_store(out, plan):
    """Every run of the plan, once (IID's run is shared by both columns), with metrics one can check by
    hand: RA = base + seed, BTI = -seed, test RA = RA - 1, train time = 10 (La-MAML) or 30 s."""
    store, seen = Store(out / "results.sqlite"), set()
    for cell in plan:
        for config in (c.model_dump() for c in combinations(cell.spec)) if cell.spec else ():
            if config_hash(config) in seen:
                continue
            seen.add(config_hash(config))
            seed, method = config["seed"], config["method"]
            ra = BASE_RA[method] + seed
            store.finish(store.start(config), {
                "ra": ra, "bti": -float(seed), "learning_accuracy": ra + seed, "test": {"ra": ra - 1, "bti": -1.0},
                "train_time_s": 10.0 if method == "la-maml" else 30.0, "eval_time_s": 1.0, "seed": seed,
                "benchmark": config["benchmark"], "method": method, "config": config, "code_commit": "abc1234"})
    return len(seen)


def _row(table, *start):
    return next(line for line in table.splitlines() if line.startswith("| " + " | ".join(start) + " |"))


def test_the_table_of_whole_benchmarks_stands_beside_the_papers_ra_with_means_stds_and_claims(tmp_path):
    plan = table2_plan(["cifar100", "tinyimagenet"], ["single", "multi"], METHODS, 3, None, {})
    runs = _fill_store(tmp_path, plan)
    assert runs == 2 * 3 * 6            # per benchmark: IID once, ER and La-MAML twice, MER single only
    text = reproduce_table2(tmp_path, "cifar100,tinyimagenet", None, ",".join(METHODS), 3, None, {}, 1,
                            table=str(tmp_path / "docs" / "t2.md"), table_only=True, command="lamaml reproduce table2")
    table = (tmp_path / "table2.md").read_text()
    assert text.startswith(table) and (tmp_path / "docs" / "t2.md").exists()
    assert table.startswith("# Table 2 (CIFAR-100 and Tiny ImageNet, task-aware): lamaml vs the paper\n")
    assert "All 36 runs ran clean commit abc1234." in table
    # ER on CIFAR-100 multi-pass: RA 59, 60, 61 (mean 60, std 1) against the paper's 59.70: within 1.5 points
    assert _row(table, "cifar100", "multi", "er") == ("| cifar100 | multi | er | 3/3 | 60.00 +/- 1.00 | 59.70 | yes "
                                                      "| -1.00 +/- 1.00 | 59.00 +/- 1.00 | -1.00 +/- 0.00 | 30 s | 3.0 |")
    # La-MAML: 67 against 70.08 misses; IID: no paper number, its multi-pass run in the single-pass column too
    assert "| 67.00 +/- 1.00 | 70.08 | **no** |" in _row(table, "cifar100", "multi", "la-maml")
    assert "| 81.00 +/- 1.00 | NOT FOUND | n/a |" in _row(table, "tinyimagenet", "single", "iid (its multi-pass run)")
    assert _row(table, "tinyimagenet", "multi", "mer").startswith(
        "| tinyimagenet | multi | mer | 0/3 | not run: the paper ran mer single-pass only | NOT FOUND |")
    assert table.count("\n| tinyimagenet | single | mer | 3/3 | 51.00 +/- 1.00 | 44.87 | **no** |") == 1
    # The claims: the paper's column on its means alone; ours by Welch's t-test
    claim = _row(table, "`la-maml-ra-above-er`", "cifar100/multi")
    assert "| supported (70.08 vs 59.70: +10.38; means only) | supported (67.00 vs 60.00: +7.00, t +8.57, 4.0 df, p 0.001) |" in claim
    assert "| n/a | not run |" in _row(table, "`la-maml-ra-above-icarl`", "cifar100/single")    # no paper number
    assert "| supported (61.18 vs 55.57: +5.61; means only) | not run |" in _row(
        table, "`learned-rates-help-la-maml-above-c-maml`", "cifar100/single")
    assert "- cifar100/multi: La-MAML's RA 67.00 is above every other method but IID's; IID's 81.00." in table
    # The ordering: paper La-MAML > MER > ER on single-pass, ours La-MAML 67 > ER 60 > MER 51
    assert "Kendall's tau between the two orders over these 3 methods: +0.33" in table
    assert "- reversed (1): MER > ER (51.00 vs 60.00: -9.00, t -11.02, 4.0 df, p < 0.001)." in table
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table2-runs.csv").read_text())))
    assert list(rows[0]) == TABLE2_RUN_COLUMNS and len(rows) == runs
    iid = [r for r in rows if r["method"] == "iid"]
    assert [(r["benchmark"], r["setting"], r["seed"]) for r in iid] == [
        (b, "multi", str(s)) for b in ("cifar100", "tinyimagenet") for s in range(3)]
    assert rows[0]["test_ra"] == "79.0000" and "epochs=50" in rows[0]["settings"]
    assert (tmp_path / "docs" / "t2-runs.csv").read_text() == (tmp_path / "table2-runs.csv").read_text()


def test_runs_on_the_first_tasks_are_never_compared_with_the_paper(tmp_path):
    plan = table2_plan(["cifar100"], ["single", "multi"], METHODS, 2, 2, {})
    _fill_store(tmp_path, plan)
    table = reproduce_table2(tmp_path, "cifar100", None, ",".join(METHODS), 2, 2, {}, 1, table_only=True)
    assert table.startswith("# Table 2 (CIFAR-100, task-aware): lamaml on the first 2 tasks "
                            "(not compared with the paper)\n")
    assert "RA (paper)" not in table and "70.08" not in table and "NOT FOUND" not in table
    assert "| claim | column | comparison | ours |" in table and "paper's table" not in table
    assert "| cifar100 | multi | er | 2/2 | 59.50 +/- 0.71 | -0.50 +/- 0.71 |" in table
    assert "- cifar100: IID's epochs are 500 batches here" in table     # 5000 x 2 of 20 tasks
    assert "**cifar100/single**, the paper's order by RA (whole benchmark): La-MAML > C-MAML > MER > GEM" in table


def test_iid_batches_per_epoch_shrink_with_the_data_unless_the_user_sets_them():
    def iid_set(tasks, overrides):
        plan = table2_plan(["tinyimagenet"], ["single"], ["iid", "er"], 1, tasks, overrides)
        return [c.spec.set for c in plan]
    # 1 of 40 tasks, 50 of 2250 samples: 5000 x 1/40 x 50/2250 = 2.8, so 3 batches of 32
    assert iid_set(1, {"samples_per_task": "50"}) == [{"samples_per_task": "50", "iterations": 3, "setting": "multi"},
                                                     {"samples_per_task": "50", "setting": "single"}]
    assert iid_set(1, {"iterations": "7"})[0] == {"iterations": "7", "setting": "multi"}  # ER has no iterations
    assert iid_set(None, {})[0] == {"setting": "multi"}                                   # the whole benchmark


@pytest.mark.parametrize("call, message", [
    (lambda: table2_plan(["cifar100"], ["single"], ["er"], 1, None, {"setting": "multi"}), "--set setting: table2 "
     "chooses it with --settings"),
    (lambda: table2_plan(["cifar100"], ["single"], ["er"], 1, None, {"iterations": "5"}), "--set iterations: neither "
     "a run setting nor a hyperparameter of er"),
    (lambda: choose("cifar100,mnist", ["cifar100", "tinyimagenet"], "--benchmarks"), "--benchmarks cifar100,mnist: "
     "choose from cifar100, tinyimagenet"),
])
def test_options_table2_cannot_take_are_refused_with_one_line(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_every_packaged_table2_claim_names_known_columns_methods_and_metrics_and_cites_its_words():
    data = table2_claims()
    assert claim_problems(data, TABLE2_COLUMNS, table2_methods(), "columns") == []
    sources = ("the authors' web page for the paper", "the authors' blog post (mila.quebec)",
               "arXiv 2007.13904 (the paper's appendix)")
    for claim in data["claims"]:
        assert set(claim["columns"]) <= set(TABLE2_COLUMNS) and claim["metric"] in CLAIM_METRICS
        assert claim["quote"] and claim["source"].startswith(sources)
    assert len(data["claims"]) >= 12


# ---------------------------------------------------------------------------- CIFAR-100, end to end

def _official_cifar(folder, per_class=10, test_per_class=2):
    """cifar-100-python/{train,test,meta} in the official format, ``per_class`` images of each class; the
    md5s the loader must trust, as {name: md5}."""
    rng = np.random.default_rng(0)

    def split(n, label):
        labels = [k for k in range(100) for _ in range(n)]
        return {"batch_label": label, "coarse_labels": [k // 5 for k in labels], "fine_labels": labels,
                "data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                "filenames": [f"image_{i}.png" for i in range(len(labels))]}
    records = {"train": split(per_class, "training batch 1 of 1"), "test": split(test_per_class, "testing batch 1 of 1"),
               "meta": {"fine_label_names": [f"class_{k:02d}" for k in range(100)],
                        "coarse_label_names": [f"super_{k:02d}" for k in range(20)]}}
    (folder / "cifar-100-python").mkdir(parents=True)
    digests = {}
    for name, record in records.items():
        content = _py2_pickle(record)
        (folder / "cifar-100-python" / name).write_bytes(content)
        digests[name] = hashlib.md5(content).hexdigest()
    return digests


def test_the_cifar100_command_runs_its_sweep_and_writes_the_table(tmp_path):
    digests = _official_cifar(tmp_path / "data")
    # Every process of the command (the driver and its spawned workers) must trust these small files'
    # md5s: a sitecustomize on their path points the loader's table of official md5s at them.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(f"from lamaml.data import cifar100\ncifar100.MD5.update({digests!r})\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hooks), str(REPO / "src")]), OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lamaml.cli", "reproduce", "table2", "--benchmarks", "cifar100", "--methods", "er,iid",
         "--tasks", "1", "--seeds", "1", "--set", "samples_per_task=40", "--data-dir", str(tmp_path / "data"),
         "--out", str(out), "--jobs", "2"], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "sweep: 3 combinations, 0 already done, 3 to run" in result.stderr and "sweep: projected" in result.stderr
    table = (out / "table2.md").read_text()
    assert "lamaml on the first 1 task, 40 samples per task (not compared with the paper)" in table
    for row in (("cifar100", "single", "er", "1/1"), ("cifar100", "single", "iid (its multi-pass run)", "1/1"),
                ("cifar100", "multi", "er", "1/1"), ("cifar100", "multi", "iid", "1/1")):
        assert _row(table, *row)
    rows = list(csv.DictReader(io.StringIO((out / "table2-runs.csv").read_text())))
    assert sorted((r["method"], r["setting"]) for r in rows) == [("er", "multi"), ("er", "single"), ("iid", "multi")]
    assert all(0 <= float(r["ra"]) <= 100 and r["test_ra"] for r in rows)
    assert "params.iterations=4" in next(r["settings"] for r in rows if r["method"] == "iid")   # 5000 / 20 x 40 / 2250


# ------------------------------------------------------------------- checkpoints inside sweep runs

SWEEP = ["sweep", "--benchmarks", "mnist-rotations", "--methods", "la-maml", "--tasks", "2",
         "--set", "samples_per_task=50", "--jobs", "1"]
COMPARED = ("ra", "bti", "acc_matrix", "task_losses", "updates")


def _sweep(store, *extra, data_dir, fault=None):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    env.pop("LAMAML_FAULT", None)
    if fault:
        env["LAMAML_FAULT"] = fault      # inherited by the sweep's workers: the run is killed there
    return subprocess.run([sys.executable, "-m", "lamaml.cli", *SWEEP, "--store", str(store), *extra],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _only_run(store):
    rows = Store(store).query(["status=done"])
    assert len(rows) == 1
    return json.loads(rows[0]["metrics"])


def test_a_sweep_run_killed_mid_way_resumes_from_its_checkpoint_to_the_uninterrupted_metrics(data_dir, tmp_path):
    whole = _sweep(tmp_path / "whole" / "runs.sqlite", data_dir=data_dir)
    assert whole.returncode == 0, whole.stderr
    store = tmp_path / "killed" / "runs.sqlite"
    # 10 batches (2 tasks of 5); a checkpoint every 2; killed in the 7th, after the one at batch 6
    killed = _sweep(store, "--checkpoint-every", "2b", data_dir=data_dir, fault="batch:7")
    assert killed.returncode == 1 and "a worker process was killed" in killed.stderr, killed.stderr
    assert killed.stderr.count("\n") < 8                                   # one line, no traceback
    checkpoints = list((store.parent / "checkpoints").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 1 and not Store(store).query(["status=done"])
    # What a table says of the unfinished run: its checkpoint's place (after batch 6: task 2's first)
    from lamaml.experiments.engines import checkpoint_progress
    config = json.loads(Store(store).query([])[0]["config"])
    assert re.fullmatch(r"checkpoint of \d{4}-\d\d-\d\d \d\d:\d\d UTC: task 2 of 2, 1 batch of its epoch 1 "
                        r"done; \d+ s trained, about \d+ s of training left at its pace so far",
                        checkpoint_progress(store, config))
    assert checkpoint_progress(store, {**config, "seed": 1}) is None            # another run's: none
    listed = subprocess.run([sys.executable, "-m", "lamaml.cli", "runs", "--store", str(store)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert re.search(r"\nrun 1 \(mnist-rotations la-maml seed 0, \w+\): checkpoint of .*: task 2 of 2, 1 batch "
                     r"of its epoch 1 done; \d+ s trained, about \d+ s of training left at its pace so far\n",
                     listed.stdout), listed.stdout
    # A corrupt current checkpoint: the previous one speaks (at batch 4: task 1, 4 batches done)
    (folder,) = (store.parent / "checkpoints").iterdir()
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert ": task 1 of 2, 4 batches of its epoch 1 done;" in checkpoint_progress(store, config)
    resumed = _sweep(store, data_dir=data_dir)          # a sweep writing no checkpoints still resumes it
    assert resumed.returncode == 0, resumed.stderr
    assert "RA " in resumed.stderr and "(resumed from its checkpoint)" in resumed.stderr
    metrics, reference = _only_run(store), _only_run(tmp_path / "whole" / "runs.sqlite")
    assert metrics["resumed"] is True and reference["resumed"] is False
    for key in COMPARED:
        assert metrics[key] == reference[key], key
    assert not list((store.parent / "checkpoints").iterdir())              # deleted once the run is done


def test_the_share_done_counts_batches_over_tasks_and_epochs():
    from lamaml.experiments.engines import share_done
    order = list(range(19))                                 # 19 samples in batches of 2: 10 batches an epoch
    assert share_done({"task": 1, "epoch": 0, "batch": 5, "order": order}, 5, 1, 2) == 15 / 50
    # 3 epochs a task, task 2's third epoch about to start: 50 of 150 done
    assert share_done({"task": 1, "epoch": 2, "batch": 0, "order": order}, 5, 3, 2) == 50 / 150
    assert share_done({"task": 5, "epoch": 0, "batch": 0, "order": order}, 5, 1, 2) == 1.0     # all trained
    assert share_done({"task": 0, "epoch": 0, "batch": 0, "order": order}, 5, 1, 2) is None
    assert share_done({"task": 0, "epoch": 0, "batch": 3}, 5, 1, 2) is None                   # no order saved


def test_one_run_shows_its_value_without_a_made_up_spread():
    from lamaml.experiments.reproduce.table2_report import _pm
    assert _pm([40.56]) == "40.56 (n=1)" and _pm([]) == "n/a" and _pm([1.0, 3.0]) == "2.00 +/- 1.41"


def test_seeds_of_gives_some_methods_more_seeds_and_each_row_says_how_many_it_asked(tmp_path):
    plan = table2_plan(["tinyimagenet"], ["single"], METHODS, 1, 5, {}, seeds_of={"la-maml": 3, "er": 3})
    assert {c.method: c.seeds for c in plan} == {"iid": 1, "er": 3, "mer": 1, "la-maml": 3}
    assert [len(c.spec.seeds) for c in plan] == [1, 3, 1, 3]
    _fill_store(tmp_path, plan)
    reproduce_table2(tmp_path, "tinyimagenet", "single", ",".join(METHODS), 1, 5, {}, 1, table_only=True,
                     seeds_of={"la-maml": 3, "er": 3})
    table = (tmp_path / "table2.md").read_text()
    assert "| tinyimagenet | single | la-maml | 3/3 | 67.00 +/- 1.00 |" in table
    assert "| tinyimagenet | single | mer | 1/1 | 50.00 (n=1) |" in table
    with pytest.raises(UserError, match="--seeds-of ewc=2: give methods of the table"):
        table2_plan(["tinyimagenet"], ["single"], METHODS, 1, 5, {}, seeds_of={"ewc": 2})


def _cells(column, ras):
    return {(column, m): [{"ra": v} for v in values] for m, values in ras.items()}


def test_the_ordering_section_ranks_both_orders_and_judges_each_pair_as_the_claims_do():
    from lamaml.experiments.reproduce.table2_ordering import ordering_section
    # paper, tinyimagenet/single: La-MAML 52.59 > C-MAML 48.77 > MER 44.87 > GEM 40.56 > ER 39.38 > A-GEM 38.96
    cells = _cells("tinyimagenet/single", {"la-maml": [52.0, 54.0], "c-maml": [44.0, 46.0], "er": [45.0, 47.0],
                                           "gem": [49.0], "iid": [60.0], "mer": []})
    text = "\n".join(ordering_section(cells, None))
    assert "the paper's RA: La-MAML 52.59 > C-MAML 48.77 > MER 44.87 > GEM 40.56 > ER 39.38 > A-GEM 38.96." in text
    assert ("Ours, same methods: La-MAML 53.00 (2 seeds) > GEM 49.00 (1 seed) > ER 46.00 (2 seeds) > "
            "C-MAML 45.00 (2 seeds); not run yet: MER; not in this table: A-GEM.") in text
    # paper order L > C > G > E, ours L > G > E > C: pairs LC LG LE agree, CG CE reversed, GE agrees -> tau 2/6
    assert "over these 4 methods: +0.33" in text
    # judged pairs (both sides 2 seeds, std 1.41 each: SE sqrt(2/2 + 2/2) = 1.41 on 2 df, critical t 4.30)
    assert "- in the paper's order (2): La-MAML > C-MAML (53.00 vs 45.00: +8.00, t +5.66, 2.0 df, p 0.030); " \
           "La-MAML > ER (53.00 vs 46.00: +7.00, t +4.95, 2.0 df, p 0.038)." in text
    assert "- within noise (1): C-MAML > ER (45.00 vs 46.00: -1.00, t -0.71, 2.0 df, p 0.553)." in text
    assert "- a side of one seed, means in the paper's order (2): La-MAML > GEM" in text and "GEM > ER" in text
    assert "- a side of one seed, means reversed (1): C-MAML > GEM (45.00 vs 49.00: -4.00; 2 and 1 seed(s))." in text
    assert "reversed (" not in text.replace("means reversed (", "")     # no pair reversed beyond noise
    assert "IID" not in text                                              # not in the paper's column
    # On the first 5 of 40 tasks: the paper's order without its numbers, and what 5 tasks can say
    part = "\n".join(ordering_section(cells, 5, part=True))
    assert "the paper's order by RA (whole benchmark): La-MAML > C-MAML > MER > GEM > ER > A-GEM." in part
    assert "52.59" not in part and "These runs cover the first 5 of the benchmark's 40 tasks, so" in part
    assert "keeps the 4 before it" in part and "Each mean here is over 1 to 2 seeds" in part
    # Fewer samples per task, every task: still no paper number beside ours, and no word of tasks
    fewer = "\n".join(ordering_section(cells, None, part=True, samples=50))
    assert "52.59" not in fewer and "These runs cover 50 of each task's 2,250 training samples, so" in fewer
    assert "forgetting acts" not in fewer
    both = "\n".join(ordering_section(cells, 5, part=True, samples=50))
    assert "the first 5 of the benchmark's 40 tasks and 50 of each task's 2,250 training samples" in both
    # A whole benchmark in a table that covers part of another: its order, no number, no false scope
    cifar = {("cifar100/single", m): runs for (_, m), runs in cells.items()}
    whole = "\n".join(ordering_section(cifar, 20, part=True))
    assert "These runs cover the whole of this benchmark, but not of the table's others" in whole
    assert "61.18" not in whole and "first 20" not in whole
    # A column the paper gives no number for, or one method only: no ranking to compare
    assert ordering_section(_cells("tinyimagenet/single", {"iid": [1.0]}), None)[-1].startswith("Too few")
    # Equal means with a one-seed side are neither in the paper's order nor reversed
    tie = "\n".join(ordering_section(_cells("tinyimagenet/single", {"la-maml": [50.0, 52.0], "er": [51.0]}), None))
    assert "- a side of one seed, means equal (1): La-MAML > ER (51.00 vs 51.00: +0.00; 2 and 1 seed(s))." in tie


def test_a_cell_whose_run_left_a_checkpoint_says_it_is_in_progress_and_where():
    from lamaml.experiments.reproduce.table2_report import table2_markdown
    plan = table2_plan(["tinyimagenet"], ["single"], ["er", "mer"], 1, 5, {})
    cells = {(cell.column, cell.method): [] for cell in plan}
    where = "seed 0: checkpoint of 2026-12-03 08:00 UTC: task 2 of 5, batch 1,204 of its epoch 1; 1.4 h trained"
    table = table2_markdown(plan, cells, 1, "lamaml reproduce table2", "first 5 tasks", tasks=5,
                            running={("tinyimagenet/single", "mer"): [where]})
    assert "| tinyimagenet | single | mer | 0/1 | in progress (see the notes) |" in table
    assert "| tinyimagenet | single | er | 0/1 | not run yet |" in table
    assert f"- In progress, tinyimagenet/single mer: {where} (the same command resumes it)." in table


def test_a_time_measured_on_more_threads_says_so_beside_it():
    from lamaml.experiments.reproduce.table2_report import table2_markdown
    plan = table2_plan(["tinyimagenet"], ["single"], ["la-maml", "mer"], 1, 5, {})
    run = lambda threads, time: {"ra": 40.0, "bti": -1.0, "train_time_s": time,  # noqa: E731
                                 "config": {"train_threads": threads}}
    cells = {("tinyimagenet/single", "la-maml"): [run(1, 100.0)], ("tinyimagenet/single", "mer"): [run(2, 900.0)]}
    table = table2_markdown(plan, cells, 1, "lamaml reproduce table2", "first 5 tasks", tasks=5)
    assert "| 100 s | 1.0 |" in table and "| 900 s (2 threads) | 9.0 (1/2 threads) |" in table
    assert "- A time marked `(N threads)` was trained on N threads" in table
    one_count = table2_markdown(plan, {**cells, ("tinyimagenet/single", "mer"): [run(1, 900.0)]}, 1, "c", "x", tasks=5)
    assert "threads" not in one_count


def test_a_claim_on_times_is_not_judged_between_runs_on_different_thread_counts():
    from lamaml.experiments.reproduce.claims import claim_rows
    from lamaml.experiments.reproduce.table2_report import table2_book
    run = lambda threads, time: {"ra": 40.0, "train_time_s": time, "config": {"train_threads": threads}}  # noqa: E731
    faster = lambda gem_threads: {  # noqa: E731
        claim["id"]: ours for claim, _, _, ours in claim_rows(
            {("cifar100/multi", "la-maml"): [run(1, 100.0), run(1, 110.0)],
             ("cifar100/multi", "gem"): [run(gem_threads, 900.0), run(gem_threads, 950.0)]}, table2_book(True, ""))}
    assert faster(1)["la-maml-faster-than-gem"].verdict == "supported"
    mixed = faster(2)["la-maml-faster-than-gem"]
    assert mixed.verdict == "n/a" and mixed.detail.startswith("times on 1 and 2 training threads; 105 s vs 925 s")
    assert faster(2)["la-maml-ra-above-gem"].verdict != "n/a"           # RA is judged whatever the threads


def test_lamaml_runs_says_when_a_checkpointed_run_would_start_over_under_todays_code(monkeypatch):
    from lamaml import cli
    from lamaml.config import resolve_config
    from lamaml.experiments import engines
    monkeypatch.setattr(engines, "checkpoint_progress", lambda store, config: "checkpoint of T: task 2 of 5")
    today = resolve_config("mnist-rotations", "la-maml").model_dump()
    older = {**today, "retired_option": True}         # a field today's code no longer has
    again = {**today, "seed": 1}                      # failed, then run again to the end
    rows = [{"id": i, "benchmark": "mnist-rotations", "method": "la-maml", "seed": config["seed"], "status": status,
             "config": json.dumps(config)} for i, (status, config) in
            enumerate([("failed", today), ("running", today), ("done", older), ("failed", older),
                       ("failed", again), ("done", again)], start=1)]
    assert cli._checkpointed("store", rows) == [
        "run 2 (mnist-rotations la-maml seed 0, running): checkpoint of T: task 2 of 5",    # its killed run 1 is silent
        "run 4 (mnist-rotations la-maml seed 0, failed): checkpoint of T: task 2 of 5 "
        "(an older configuration: today's code would start it over)"]   # seed 1's latest attempt finished: silent


def test_a_resumed_run_is_named_in_the_notes():
    from lamaml.experiments.reproduce.table2_report import table2_markdown
    plan = table2_plan(["tinyimagenet"], ["single"], ["la-maml", "mer"], 1, 5, {})
    run = lambda resumed: {"ra": 40.0, "bti": -1.0, "train_time_s": 100.0, "seed": 0,  # noqa: E731
                           "resumed": resumed, "config": {"seed": 0}}
    table = table2_markdown(plan, {("tinyimagenet/single", "la-maml"): [run(False)],
                                   ("tinyimagenet/single", "mer"): [run(True)]}, 1, "c", "first 5 tasks", tasks=5)
    assert "- Resumed from their checkpoints after their processes were stopped (a training time is the sum of " \
           "its processes', each measured under its own load): tinyimagenet/single mer seed 0." in table
    plain = table2_markdown(plan, {("tinyimagenet/single", "la-maml"): [run(False)]}, 1, "c", "first 5 tasks", tasks=5)
    assert "Resumed" not in plain


def test_a_whole_benchmark_table_says_when_its_runs_leave_the_papers_presets(monkeypatch):
    """--set glances=1 on every task still shows the paper's column, but says its marks are not a
    reproduction of the paper's protocol; settings of where and how fast a run computes do not."""
    import lamaml.engine.results
    from lamaml.experiments.reproduce.table2 import departures
    from lamaml.experiments.reproduce.table2_report import table2_markdown
    assert departures({"glances": 1, "train_threads": 2, "samples_per_task": 50, "device": "cuda", "lr": 0.1}) == \
        ["glances", "lr"]
    monkeypatch.setattr(lamaml.engine.results, "code_commit", lambda: "abc1234+dirty")
    plan = table2_plan(["tinyimagenet"], ["single"], ["la-maml"], 1, None, {"glances": 1})
    cells = {("tinyimagenet/single", "la-maml"): [{"ra": 40.0, "bti": -1.0, "train_time_s": 1.0}]}
    table = table2_markdown(plan, cells, 1, "c", None, departures=["glances"])
    assert "**These runs leave the paper's presets (`--set` glances): \"RA reproduced\" says how near" in table
    assert "at commit abc1234+dirty on" in table        # the report's own code, dirty or not
    assert "leave the paper's presets" not in table2_markdown(plan, cells, 1, "c", None)


def test_a_margin_stated_for_a_whole_benchmark_is_not_judged_on_part_of_it():
    from lamaml.experiments.reproduce.claims import claim_rows
    from lamaml.experiments.reproduce.table2_report import table2_book
    runs = lambda ra: [{"ra": ra + d, "config": {"seed": d}} for d in range(3)]  # noqa: E731
    cells = {("tinyimagenet/multi", "la-maml"): runs(70.0), ("tinyimagenet/multi", "er"): runs(40.0)}
    verdicts = lambda full: {c["id"]: ours for c, _, _, ours in claim_rows(cells, table2_book(full, "first 5 tasks"))}  # noqa: E731
    assert verdicts(True)["la-maml-ra-over-er-by-18-on-tiny-imagenet"].verdict == "supported"
    part = verdicts(False)["la-maml-ra-over-er-by-18-on-tiny-imagenet"]
    assert part.verdict == "n/a" and part.detail.startswith("a margin of 18 stated for the whole benchmark")
    assert verdicts(False)["la-maml-ra-above-er"].verdict == "supported"      # an order is still judged
