"""`lamaml reproduce successors`: the plan of runs, the table and its findings from a hand-made store, and
the command end to end on a small slice of real MNIST."""
import csv
import io

import pytest

from lamaml.config import resolve_config

from conftest import run_lamaml as lamaml
from lamaml.errors import UserError
from lamaml.experiments.reproduce.successors import (RUN_COLUMNS, findings, reproduce_successors,
                                                     successors_plan, successors_setup)
from lamaml.experiments.store import Store, config_hash
from lamaml.experiments.sweep import combinations

RA = {"la-maml": 70.0, "vr-mcl": 69.5, "er": 60.0, "er-ace": 64.0, "der++": 75.0}   # seeds add 0, 1, 2


def _fill(out, plan):
    """Every run of the plan with metrics one checks by hand: RA = RA[method] + seed, BTI = -seed,
    AAA = RA + 5 (La-MAML: RA - 20, so AAA ranks it last), train time 10 s (La-MAML) or 20 s."""
    store = Store(out / "results.sqlite")
    for config in (c.model_dump() for spec in plan for c in combinations(spec)):
        method, seed = config["method"], config["seed"]
        ra = RA[method] + seed
        store.finish(store.start(config), {
            "ra": ra, "bti": -float(seed), "aaa": ra - 20 if method == "la-maml" else ra + 5,
            "worst_case_accuracy": ra - 1, "learning_accuracy": ra + 1,
            "train_time_s": 10.0 if method == "la-maml" else 20.0, "eval_time_s": 1.0, "seed": seed,
            "benchmark": config["benchmark"], "method": method, "config": config, "code_commit": "abc1234"})


def test_the_plan_runs_every_method_on_every_benchmark_with_its_anytime_settings():
    setup = successors_setup()
    plan = successors_plan(5)
    configs = [c for spec in plan for c in combinations(spec)]
    assert len(configs) == 7 * 4 * 5 and len({config_hash(c.model_dump()) for c in configs}) == len(configs)
    assert set(setup["methods"]) == {"la-maml", "c-maml", "vr-mcl", "er", "er-ace", "der++", "mer"}
    for config in configs:
        # every method evaluates after as many incoming samples: MER streams them one at a time
        samples = setup["benchmarks"][config.benchmark]["eval_every"] * 10
        assert config.eval_every * config.batch_size == samples
        assert config.setting == "single" and config.tasks is None
    assert {c.eval_every for c in configs if c.method == "mer" and c.benchmark == "mnist-rotations"} == {500}
    many = [c for c in configs if c.benchmark == "mnist-many-permutations"]
    assert {c.anytime_samples for c in many} == {1000}
    assert {c.anytime_samples for c in configs if c.benchmark != "mnist-many-permutations"} == {None}
    with pytest.raises(UserError, match="--methods ewc"):
        successors_plan(1, methods="ewc")


def test_the_table_and_its_findings_from_a_hand_made_store(tmp_path):
    methods = "la-maml,vr-mcl,er,er-ace,der++"
    plan = successors_plan(3, benchmarks="mnist-rotations", methods=methods)
    _fill(tmp_path, plan)
    text = reproduce_successors(tmp_path, 3, None, {}, 1, None, "mnist-rotations", methods, table_only=True)
    table = (tmp_path / "successors.md").read_text()
    assert text.startswith(table) and "All 15 runs ran clean commit abc1234." in table
    # La-MAML: RA 70, 71, 72 (mean 71, std 1); AAA 20 lower; 10 s against the others' 20 s
    assert "| mnist-rotations | la-maml | 3/3 | 71.00 +/- 1.00 | -1.00 +/- 1.00 | 51.00 +/- 1.00 | " \
           "70.00 +/- 1.00 | 10 s | 1.0 |" in table
    assert "| mnist-rotations | der++ | 3/3 | 76.00 +/- 1.00 |" in table and "| 20 s | 2.0 |" in table
    line = next(line for line in table.splitlines() if line.startswith("- **mnist-rotations**"))
    assert "by RA: DER++ 76.0, La-MAML 71.0, VR-MCL 70.5, ER-ACE 65.0, ER 61.0" in line
    assert "AAA ranks them differently: DER++ 81.0, VR-MCL 75.5, ER-ACE 70.0, ER 66.0, La-MAML 51.0" in line
    # 70.5 vs 71 with std 1 on 3 seeds each: t -0.61 on 4 df, within noise; DER++ 76 vs 71: t 6.12, above
    assert "VR-MCL's RA is within noise of La-MAML's (70.50 vs 71.00: -0.50, t -0.61, 4.0 df, p 0.573)" in line
    assert "the best replay baseline, DER++'s RA is above La-MAML's (76.00 vs 71.00: +5.00" in line
    rows = list(csv.DictReader(io.StringIO((tmp_path / "successors-runs.csv").read_text())))
    assert list(rows[0]) == RUN_COLUMNS and len(rows) == 15
    assert [(r["method"], r["seed"], r["aaa"]) for r in rows[:2]] == [("la-maml", "0", "50.0000"),
                                                                        ("la-maml", "1", "51.0000")]


def test_findings_say_below_when_the_successor_loses_beyond_noise():
    runs = lambda base: [{"ra": base + s, "seed": s} for s in range(3)]  # noqa: E731
    cells = {("split-mnist", "la-maml"): runs(80.0), ("split-mnist", "vr-mcl"): runs(70.0)}
    (line,) = findings(cells)
    assert "VR-MCL's RA is below La-MAML's (71.00 vs 81.00: -10.00" in line
    assert "AAA" not in line                       # no anytime numbers: no AAA ranking is made up
    cells[("split-mnist", "vr-mcl")] = runs(70.0)[:1]
    assert "VR-MCL's RA against La-MAML's is not judged (too few seeds: 70.00 vs 81.00" in findings(cells)[0]


def test_the_command_end_to_end_on_a_slice_of_split_mnist(data_dir, tmp_path):
    args = ["reproduce", "successors", "--benchmarks", "split-mnist", "--methods", "la-maml,er-ace", "--tasks", "2",
            "--seeds", "1", "--set", "samples_per_task=30", "--jobs", "1", "--out", tmp_path]
    result = lamaml(*args, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "successors.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| split-mnist |")]
    assert len(rows) == 2 and all("| 1/1 |" in row and "n/a" not in row and "(n=1)" in row for row in rows)
    again = lamaml(*args, data_dir=data_dir)
    assert again.returncode == 0 and "2 combinations, 2 already done, 0 to run" in again.stderr


def test_the_replay_baselines_get_la_mamls_glances_memory_and_clip_on_every_benchmark():
    """One replay budget: a ranking of ER, ER-ACE and DER++ against La-MAML compares methods, not how
    many steps or samples each was given (the paper tuned every baseline's glances, appendix G)."""
    for benchmark in successors_setup()["benchmarks"]:
        la_maml = resolve_config(benchmark, "la-maml")
        for method in ("er", "er-ace", "der++"):
            config = resolve_config(benchmark, method)
            assert (config.glances, config.batch_size) == (la_maml.glances, la_maml.batch_size), (benchmark, method)
            assert config.params["memories"] == la_maml.params["memories"], (benchmark, method)
            assert config.params["replay_batch_size"] == la_maml.params["replay_batch_size"] == 10
            assert config.params["grad_clip_norm"] == 2.0
