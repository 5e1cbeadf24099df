"""Figures group runs as the report does, name what differs, keep benchmarks apart, and write what they draw."""
import csv
import io

import pytest

from lamaml.cli import main
from lamaml.config import resolve_config
from lamaml.errors import UserError
from lamaml.experiments.plots import plot, save
from lamaml.experiments.report import summarize_runs
from lamaml.experiments.runs import load_runs
from lamaml.experiments.store import Store


def _record(store, seed, matrix, benchmark="mnist-rotations", method="la-maml", times=(1.0, 2.0), **overrides):
    """A finished run, inserted as a sweep would record it: its resolved config, a 2-task accuracy matrix."""
    config = resolve_config(benchmark, method, overrides, seed=seed, tasks=2).model_dump()
    ra = sum(v for v in matrix[-1] if v is not None) / len(matrix[-1])
    metrics = {"benchmark": benchmark, "method": method, "seed": seed, "config": config, "acc_matrix": matrix,
               "ra": ra, "bti": -1.0, "train_time_s": times[-1], "train_time_after_task_s": list(times),
               "series": {"alignment": [{"task": 1, "cosine": 0.5 + seed / 10}]}}
    store.finish(store.start(config), metrics)


def _rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _legends(chart):
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in chart.figure.axes if ax.get_legend()]


@pytest.fixture
def two_alphas(tmp_path):
    """alpha_init 0.15 and 0.3, two seeds each; RA after each task: 80, 80 / 60, 60 and 90, 90 twice."""
    path = tmp_path / "s.sqlite"
    store = Store(path)
    _record(store, 0, [[80, None], [70, 90]], alpha_init=0.15)
    _record(store, 1, [[60, None], [50, 70]], alpha_init=0.15)
    for seed in (0, 1):
        _record(store, seed, [[90, None], [80, 100]], alpha_init=0.3)
    return path


def test_ra_curve_draws_one_series_per_alpha_with_n_2_and_names_alpha_in_the_legend(two_alphas, tmp_path, capsys):
    out = tmp_path / "figs" / "ra"
    assert main(["plot", "ra-curve", "--store", str(two_alphas), "--out", str(out)]) == 0
    assert {p.name for p in out.parent.iterdir()} == {"ra.png", "ra.pdf", "ra.csv"}
    assert f"wrote {out}.csv" in capsys.readouterr().out
    rows = _rows(out.with_suffix(".csv"))
    assert list(rows[0]) == ["benchmark", "series", "method", "settings", "n", "tasks_learned", "ra_mean", "ra_std"]
    assert [(r["series"], r["settings"], r["n"], r["tasks_learned"], float(r["ra_mean"])) for r in rows] == [
        ("la-maml alpha_init=0.15", "alpha_init=0.15", "2", "1", 70.0),
        ("la-maml alpha_init=0.15", "alpha_init=0.15", "2", "2", 70.0),
        ("la-maml alpha_init=0.3", "alpha_init=0.3", "2", "1", 90.0),
        ("la-maml alpha_init=0.3", "alpha_init=0.3", "2", "2", 90.0)]
    assert float(rows[0]["ra_std"]) == pytest.approx(200 ** 0.5) and float(rows[2]["ra_std"]) == 0.0
    chart = plot("ra-curve", load_runs([], two_alphas))
    assert _legends(chart) == [["la-maml alpha_init=0.15 (n=2)", "la-maml alpha_init=0.3 (n=2)"]]


def test_figures_and_the_report_name_the_same_groups(two_alphas):
    report = summarize_runs(Store(two_alphas).query())
    chart = plot("ra-vs-time", load_runs([], two_alphas))
    assert [(r["settings"], r["seeds"]) for r in report] == [("alpha_init=0.15", 2), ("alpha_init=0.3", 2)]
    assert list(dict.fromkeys((r["settings"], r["n"]) for r in chart.rows)) == [(r["settings"], r["seeds"])
                                                                                 for r in report]


def test_a_method_with_one_setting_is_named_alone_beside_one_with_several(two_alphas):
    _record(Store(two_alphas), 0, [[50, None], [40, 60]], method="c-maml")
    chart = plot("alignment", load_runs([], two_alphas))
    assert _legends(chart) == [["c-maml (n=1)", "la-maml alpha_init=0.15 (n=2)", "la-maml alpha_init=0.3 (n=2)"]]
    assert [(r["series"], r["n"], r["cosine_mean"]) for r in chart.rows] == [
        ("c-maml", 1, 0.5), ("la-maml alpha_init=0.15", 2, pytest.approx(0.55)),
        ("la-maml alpha_init=0.3", 2, pytest.approx(0.55))]


def test_two_benchmarks_get_one_panel_each_never_one_pooled_line(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    _record(store, 0, [[80, None], [70, 90]])
    _record(store, 0, [[40, None], [30, 50]], benchmark="mnist-permutations")
    chart = plot("ra-curve", load_runs([], tmp_path / "s.sqlite"))
    assert [ax.get_title() for ax in chart.figure.axes] == ["mnist-permutations", "mnist-rotations"]
    assert _legends(chart) == [["la-maml (n=1)"], ["la-maml (n=1)"]]
    assert {(r["benchmark"], r["tasks_learned"], r["ra_mean"]) for r in chart.rows} == {
        ("mnist-permutations", 1, 40.0), ("mnist-permutations", 2, 40.0),
        ("mnist-rotations", 1, 80.0), ("mnist-rotations", 2, 80.0)}


def test_learning_rate_figures_refuse_what_they_would_pool(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    for alpha in (0.1, 0.3):
        _record(store, 0, [[80, None], [70, 90]], alpha_init=alpha)
        _record(store, 0, [[80, None], [70, 90]], benchmark="mnist-permutations", alpha_init=alpha)
    with pytest.raises(UserError, match="lr-grid draws one benchmark; the selected runs are on "
                                        "mnist-permutations, mnist-rotations"):
        plot("lr-grid", load_runs([], path))
    _record(store, 0, [[80, None], [70, 90]], alpha_init=0.3, glances=3)
    with pytest.raises(UserError, match="the la-maml runs differ in glances besides their learning rates"):
        plot("lr-robustness", load_runs([], path, ["benchmark=mnist-rotations"]))


def test_lr_robustness_writes_one_row_per_point_with_its_group(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    for seed, alpha, final in [(0, 0.1, 60), (1, 0.1, 70), (0, 0.3, 90)]:
        _record(store, seed, [[final, None], [final, final]], alpha_init=alpha)
    written = save(plot("lr-robustness", load_runs([], path)), tmp_path / "lr")
    rows = _rows(written[-1])
    assert [(r["varied"], r["value"], r["settings"], r["n"], r["ra_mean"]) for r in rows] == [
        ("alpha_init", "0.1", "alpha_init=0.1", "2", "65.0"), ("alpha_init", "0.3", "alpha_init=0.3", "1", "90.0")]
    assert rows[1]["ra_std"] == ""      # one run: no spread, rather than a made-up 0


def test_ra_curves_refuse_runs_that_did_not_measure_the_ra_after_every_task(tmp_path, capsys):
    """evaluate=metrics (the default) leaves row t without the tasks before t-1: the mean of what it has is
    the accuracy on the task just learned, which the figure must not draw under RA's name."""
    from lamaml.engine.metrics import progress_text, ra_so_far
    store = Store(tmp_path / "s.sqlite")
    _record(store, 0, [[90, 85, None], [None, 88, 80], [70, 75, 92]])
    for kind in ("ra-curve", "ra-vs-time"):
        assert main(["plot", kind, "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / kind)]) == 2
        err = capsys.readouterr().err
        assert f"plot {kind}: 1 of the 1 selected runs did not measure the RA after every task" in err, err
        assert "--set evaluate=seen" in err and err.count("\n") == 1
    row = [None, 88.0, 80.0]
    assert ra_so_far([90.0, 85.0, float("nan")], 0) == 90.0 and ra_so_far([70.0, 75.0, 92.0], 2) == 79.0
    assert ra_so_far([float("nan"), 88.0, 80.0], 1) is None
    assert progress_text([[float(v) if v is not None else float("nan") for v in row]], 1) == "task 2 accuracy 88.00 %"
    assert progress_text([[70.0, 75.0, 92.0]], 2) == "RA 79.00 %"
    assert progress_text([[70.0, 75.0, 92.0], [60.0, 66.0, 72.0]], 2) == "RA 79.00 / 66.00 %"


def test_the_matrix_plot_names_its_split_and_refuses_a_run_without_a_matrix(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    _record(store, 0, [[90, None], [80, 95]])
    (run,) = load_runs([], tmp_path / "s.sqlite")
    assert {r["series"] for r in plot("matrix", [run]).rows} == {"test accuracy (%)"}
    vision = dict(run, accuracy_split="val")       # the vision benchmarks' matrix: the validation split's
    assert {r["series"] for r in plot("matrix", [vision]).rows} == {"validation accuracy (%)"}
    imported = {k: v for k, v in run.items() if k != "acc_matrix"}     # restored from exported rows
    with pytest.raises(UserError, match="plot matrix: run la-maml seed 0 keeps no accuracy matrix"):
        plot("matrix", [imported])
