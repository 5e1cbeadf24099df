"""The analyses' probes measure without disturbing, their numbers mean what they say, plots exist."""
import csv
import json
import math

import numpy as np
import pytest
import torch

from lamaml.config import resolve_config
from lamaml.engine import run
from lamaml.engine.loop import Progress
from lamaml.engine.plugins import RunState
from lamaml.engine.probes import Probes, cosine_matrix, mean_off_diagonal
from lamaml.errors import UserError
from lamaml.methods.online import Online
from lamaml.methods.la_maml import LaMAML
from test_checkpoint import lamaml

SMALL = {"samples_per_task": 30, "glances": 2, "analysis_every": 4, "analysis_samples": 200,
         "evaluate": "seen"}     # the RA after every task, which the RA curves draw
ALL = ["alignment", "fast-weights", "lr-stats"]


@pytest.fixture(scope="module")
def measured(data_dir):
    config = resolve_config("mnist-rotations", "la-maml", {**SMALL, "analyses": ALL, "eval_every": 2}, tasks=4)
    return run(config, data_dir=data_dir, download=False)


def test_probes_measure_without_changing_the_run(measured, data_dir):
    plain = run(resolve_config("mnist-rotations", "la-maml", SMALL, tasks=4), data_dir=data_dir, download=False)
    for key in ("acc_matrix", "baseline_accuracy", "task_losses", "ra", "bti"):
        assert measured[key] == plain[key], key
    series = measured["series"]
    assert [p["task"] for p in series["alignment"]] == [2, 3]      # needs two old tasks
    updates = measured["updates"]                                  # 4 tasks x 3 batches x 2 glances
    assert [p["update"] for p in series["fast-weights"]] == list(range(4, updates + 1, 4))
    assert len(series["lr-stats"]) == len(series["fast-weights"]) * 6   # one row per parameter tensor
    assert all(-1 <= p["cosine"] <= 1 for p in series["alignment"])
    assert len(measured["train_time_after_task_s"]) == 4
    assert measured["train_time_after_task_s"] == sorted(measured["train_time_after_task_s"])


def test_cosine_helpers_match_a_hand_computation():
    grads = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    cos = cosine_matrix(grads)
    assert torch.allclose(cos, torch.tensor([[1, 0, 0.5 ** 0.5], [0, 1, 0.5 ** 0.5], [0.5 ** 0.5, 0.5 ** 0.5, 1]]))
    assert math.isclose(mean_off_diagonal(cos), 2 * 0.5 ** 0.5 / 3, rel_tol=1e-6)


class _Task:
    def __init__(self, x, y):
        self._test = (x, y)

    def test(self):
        return self._test


def _run(method, series=None):
    """What the loop hands its plugins: the method and a fresh progress record."""
    progress = Progress(np.full((2, 2), np.nan))
    if series is not None:
        progress.series = series
    return RunState(method, progress, torch.Generator())


def _tiny_method(cls, **params):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    return cls(model, cls.Params(**params), torch.Generator().manual_seed(0))


def test_alignment_is_one_for_identical_old_tasks_and_minus_one_for_opposed_ones():
    method = _tiny_method(Online)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    probes = Probes(["alignment"], [_Task(x, y), _Task(x, y)], torch.device("cpu"), 1, 8)
    probes.run_starts(_run(method))
    assert math.isclose(probes.alignment(method, 2), 1.0, rel_tol=1e-5)
    # the last layer's bias alone: the gradient of class c's CE is softmax - onehot(c)
    method.model = torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        method.model[0].weight.zero_()
    method.model[0].weight.requires_grad_(True)
    probes = Probes(["alignment"], [_Task(x[:1], torch.tensor([0])), _Task(x[:1], torch.tensor([1]))],
                    torch.device("cpu"), 1, 1)
    probes.run_starts(_run(method))
    assert math.isclose(probes.alignment(method, 2), -1.0, rel_tol=1e-5)


def test_fast_weights_are_the_end_point_of_the_inner_loop():
    method = _tiny_method(LaMAML, memories=0, alpha_init=0.2)
    method.record_fast_weights = True
    x, y = torch.randn(1, 4), torch.tensor([2])
    before = {name: w.detach().clone() for name, w in method.weights.items()}
    params = {name: w.clone().requires_grad_(True) for name, w in before.items()}
    loss = method.loss(torch.func.functional_call(method.model, params, (x,)), y)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    method.observe(x, y, 0, first_sight=True)
    for name in before:   # one sample: one inner step of rate relu(0.2) from the weights before
        assert torch.allclose(method.fast_weights[name], before[name] - 0.2 * grads[name], atol=1e-6)
    assert not torch.equal(method.weights["0.weight"], before["0.weight"])


def test_lr_stats_report_the_mean_and_the_share_of_rates_at_or_below_zero():
    method = _tiny_method(LaMAML)
    with torch.no_grad():
        method.alpha["0.bias"].copy_(torch.tensor([-0.1, 0.0, 0.1, 0.2, 0.3]))
    series = {}
    run = _run(method, series)
    probes = Probes(["lr-stats"], [], torch.device("cpu"), 5, 1)
    probes.run_starts(run)
    probes.update_done(run, 0, 4)
    assert series["lr-stats"] == []                      # only every 5 updates
    probes.update_done(run, 0, 5)
    row = next(p for p in series["lr-stats"] if p["parameter"] == "0.bias")
    assert math.isclose(row["mean"], 0.1, rel_tol=1e-6) and math.isclose(row["fraction_nonpositive"], 0.4, rel_tol=1e-6)


def test_the_series_survive_a_kill_and_resume(data_dir, tmp_path):
    args = ["--method", "la-maml", "--tasks", "3", "--set", "samples_per_task=30", "--set", "analysis_every=2",
            "--analyses", "alignment,fast-weights,lr-stats", "--quiet"]
    whole = lamaml("run", "--out", tmp_path / "whole", *args, data_dir=data_dir)
    assert whole.returncode == 0, whole.stderr
    killed = lamaml("run", "--out", tmp_path / "killed", *args, "--checkpoint-every", "1b", data_dir=data_dir,
                    fault="batch:7")
    assert killed.returncode == -9
    resumed = lamaml("run", "--resume", tmp_path / "killed", "--quiet", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "killed"))
    assert got["series"] == expected["series"] and got["acc_matrix"] == expected["acc_matrix"]


def test_analyses_a_method_cannot_give_are_refused_before_any_work():
    with pytest.raises(UserError, match="fast-weights needs a look-ahead method"):
        resolve_config("mnist-rotations", "online", {"analyses": ["fast-weights"]})
    with pytest.raises(UserError, match="analyses"):
        resolve_config("mnist-rotations", "la-maml", {"analyses": ["nope"]})


def test_tensorboard_logs_the_losses_accuracies_and_series(data_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    result = lamaml("run", "--tasks", "3", "--set", "samples_per_task=20", "--analyses", "alignment", "--quiet",
                    "--tensorboard", tmp_path / "tb", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    [folder] = (tmp_path / "tb").iterdir()             # each run logs into a folder of its own
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/retained_accuracy", "eval/task_000_accuracy", "final/ra",
            "analysis/gradient_alignment"} <= tags
    assert len(events.Scalars("train/loss")) == 3 * 2
    # the RA so far where evaluate=metrics measured it: after the first task and the last, not the second
    assert [e.step for e in events.Scalars("eval/retained_accuracy")] == [1, 3]


def test_every_plot_is_written_as_png_and_pdf_with_its_numbers_as_csv(measured, tmp_path):
    from lamaml.experiments.plots import KINDS, plot, save
    config = measured["config"]
    other = dict(measured, method="c-maml", seed=1, config={**config, "method": "c-maml", "seed": 1})
    faster = dict(measured, config={**config, "params": {**config["params"], "alpha_init": 0.3}})
    for kind in KINDS:
        runs = [measured] if kind in ("matrix", "fast-weights", "lr-stats") else [measured, other, faster]
        written = save(plot(kind, runs), tmp_path / kind)
        assert [p.suffix for p in written] == [".png", ".pdf", ".csv"]
        assert all(p.stat().st_size > 1000 for p in written[:2])
        header, *rows = written[2].read_text().splitlines()
        assert header.startswith("benchmark,series,method,") and ",n," in header and rows, kind
    with pytest.raises(UserError, match="shows one run; 2 were selected"):
        plot("matrix", [measured, other])
    with pytest.raises(UserError, match="no fast-weights series"):
        plot("fast-weights", [dict(measured, series={})])
    with pytest.raises(UserError, match="run them with --eval-every K"):
        plot("anytime", [dict(measured, anytime_curve=None)])


def test_the_anytime_plot_draws_the_mean_curve_of_the_seeds_at_their_batches(measured, tmp_path):
    from lamaml.experiments.plots import plot, save
    config = measured["config"]
    other = dict(measured, seed=1, config={**config, "seed": 1},
                 anytime_curve=[dict(p, accuracy=p["accuracy"] + 10) for p in measured["anytime_curve"]])
    rows = list(csv.DictReader(open(save(plot("anytime", [measured, other]), tmp_path / "a")[2])))
    curve = measured["anytime_curve"]
    assert [int(r["batches"]) for r in rows] == [p["batches"] for p in curve] and {r["n"] for r in rows} == {"2"}
    assert [float(r["accuracy_mean"]) for r in rows] == pytest.approx([p["accuracy"] + 5 for p in curve])
    assert [r["task_end"] for r in rows].count("True") == 4


def test_ra_after_each_task_reads_the_lower_triangle():
    from lamaml.experiments.plots import ra_after_each_task
    run_ = {"acc_matrix": [[50, None, None], [40, 80, 10], [30, 60, 90]]}
    assert np.allclose(ra_after_each_task(run_), [50, 60, 60])
