"""Scenarios (task-il, class-il, domain-il), Split MNIST, and anytime evaluation (AAA, min-ACC, WC-ACC)."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_lamaml as lamaml
from lamaml.config import resolve_config
from lamaml.data import build_benchmark, stream_from_data
from lamaml.data.images import ImageSet
from lamaml.data.vision import split_image_stream
from lamaml.engine import run
from lamaml.engine.evaluate import evaluate_all
from lamaml.engine.metrics import anytime_metrics
from lamaml.errors import UserError
from lamaml.methods import method_class

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]     # the data README (shared/data)
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CPU = torch.device("cpu")


# -- Split MNIST ---------------------------------------------------------------------------------------

def test_split_mnist_tasks_hold_exactly_their_two_digits_every_image_of_them(data_dir):
    stream = build_benchmark("split-mnist", data_dir, seed=0, download=False)
    assert len(stream) == 5 and stream.scenario == "class-il" and stream.n_outputs == 10
    for t, task in enumerate(stream):
        digits = [2 * t, 2 * t + 1]
        assert task.classes == digits and task.info["digits"] == digits
        x, y = task.train()
        assert x.shape == (TRAIN_COUNTS[2 * t] + TRAIN_COUNTS[2 * t + 1], 784) and task.n_train == len(y)
        assert torch.bincount(y, minlength=10).tolist() == [TRAIN_COUNTS[d] if d in digits else 0 for d in range(10)]
        x_test, y_test = task.test()
        assert torch.bincount(y_test, minlength=10).tolist() == [TEST_COUNTS[d] if d in digits else 0
                                                                 for d in range(10)]
        assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert sum(task.n_train for task in stream) == 60000
    assert stream[0].n_train == 5923 + 6742


def test_split_mnist_samples_per_task_is_a_seeded_choice_within_the_task(data_dir):
    a, b, c = (build_benchmark("split-mnist", data_dir, seed=s, samples_per_task=100, download=False)
               for s in (0, 0, 1))
    for t in range(5):
        ya = a[t].train()[1]
        assert len(ya) == 100 and set(ya.tolist()) <= {2 * t, 2 * t + 1}
        assert torch.equal(a[t].train()[0], b[t].train()[0])
    assert not torch.equal(a[0].train()[0], c[0].train()[0])
    with pytest.raises(UserError, match=r"samples_per_task=20000: split-mnist's task 0 \(digits 0 and 1\) has 12665"):
        build_benchmark("split-mnist", data_dir, seed=0, samples_per_task=20000, download=False)


def test_every_method_has_a_split_mnist_preset_that_resolves():
    from lamaml.methods import METHODS
    for name in METHODS:
        config = resolve_config("split-mnist", name)
        assert config.scenario == ("task-il" if name == "icarl" else None)
    assert resolve_config("split-mnist", "la-maml").params["alpha_init"] == \
        resolve_config("mnist-rotations", "la-maml").params["alpha_init"]
    assert resolve_config("split-mnist", "der++").params["beta"] == 1.0          # Mammoth's seq-mnist, 200


# -- scenarios ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist-rotations", "mnist-permutations", "mnist-many-permutations"])
def test_class_il_is_refused_on_the_domain_incremental_benchmarks_in_one_line(name, tmp_path):
    with pytest.raises(UserError, match=f"--set scenario=class-il: {name} runs under domain-il only"):
        resolve_config(name, "la-maml", {"scenario": "class-il"})
    result = lamaml("config", "--benchmark", name, "--set", "scenario=class-il", data_dir=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"lamaml: --set scenario=class-il: {name} runs under domain-il only")
    assert len(result.stderr.strip().splitlines()) == 1


def test_icarl_predicts_with_the_task_id_and_is_refused_under_class_il():
    with pytest.raises(UserError, match="icarl predicts with the task id"):
        resolve_config("split-mnist", "icarl", {"scenario": "class-il"})
    assert resolve_config("split-mnist", "icarl").scenario == "task-il"


def _two_task_stream():
    """Task 0: digits 0/1, task 1: 2/3, one input feature per class (x = one-hot of the label)."""
    eye = torch.eye(4)
    tasks = [{"train": (eye[[0, 1]], torch.tensor([0, 1])), "test": (eye[[0, 1]], torch.tensor([0, 1])),
              "classes": [0, 1]},
             {"train": (eye[[2, 3]], torch.tensor([2, 3])), "test": (eye[[2, 3]], torch.tensor([2, 3])),
              "classes": [2, 3]}]
    return stream_from_data(tasks)


def _hand_made_method(stream):
    """A linear model whose logits favour class 2 (task 1's) for task 0's inputs; within each task's
    own pair of outputs, the right class wins."""
    model = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(4))
        model.weight[2, :2] = 5.0       # digits 0 and 1 score 5 on output 2
    method = method_class("online")(model, method_class("online").Params(), torch.Generator())
    method.use_task_heads(stream.head_mask())
    return method


def test_a_model_favouring_another_tasks_class_is_right_under_task_il_and_wrong_under_class_il():
    task_il = _two_task_stream()
    class_il = task_il.with_scenario("class-il")
    assert task_il.scenario == "task-il" and class_il.head_mask() is None
    right = evaluate_all(_hand_made_method(task_il), task_il, CPU, 100)
    wrong = evaluate_all(_hand_made_method(class_il), class_il, CPU, 100)
    assert right.tolist() == [100.0, 100.0]
    assert wrong.tolist() == [0.0, 100.0]     # task 0's digits are called 2


class _Spy(nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(outputs))

    def forward(self, x):
        return self.weight.expand(len(x), -1)


def test_vision_benchmarks_run_class_il_with_one_head_and_no_task_id_at_test():
    images = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(200) % 10, images[:50], torch.arange(50) % 10, tuple("abcdefghij"))
    stream = split_image_stream("cifar100", data, 2, 0, None, (0.5,) * 3, (0.5,) * 3, None)
    assert stream.scenario == "task-il" and stream.head_mask().sum(1).tolist() == [5, 5]
    class_il = stream.with_scenario("class-il")
    assert class_il.head_mask() is None and not class_il.task_ids_at_test
    seen = []
    method = method_class("online")(_Spy(10), method_class("online").Params(), torch.Generator())
    method.predict = lambda x, task: seen.append(task) or torch.zeros(len(x), 10)
    evaluate_all(method, class_il, CPU, 100)
    evaluate_all(method, stream, CPU, 100)
    assert seen == [None, None, 0, 1]
    assert resolve_config("cifar100", "la-maml", {"scenario": "class-il"}).scenario == "class-il"
    with pytest.raises(UserError, match="runs under task-il or class-il only"):
        resolve_config("tinyimagenet", "er", {"scenario": "domain-il"})


def test_a_class_il_run_scores_below_the_task_il_run_of_the_same_stream(data_dir):
    """Same stream, model and order; class-il must tell digit 0 from 3 as well, task-il only 0 from 1."""
    rows = {}
    for scenario in ("task-il", "class-il"):
        # little replay (one glance, a replay batch of 1): at the preset's 5 glances and replay batch
        # of 10, ER all but masters two class-il tasks of 200 samples (91 vs 97), hiding the gap
        config = resolve_config("split-mnist", "er", {"scenario": scenario, "samples_per_task": "200",
                                                      "glances": "1", "replay_batch_size": "1"}, tasks=2)
        metrics = run(config, data_dir, download=False)
        assert metrics["scenario"] == scenario
        rows[scenario] = metrics["acc_matrix"][-1]
    assert np.mean(rows["class-il"]) <= np.mean(rows["task-il"]) - 10
    assert rows["class-il"][0] < rows["task-il"][0] - 20       # task 0's digits now lose to 2 and 3
    assert np.mean(rows["task-il"]) > 80


# -- anytime evaluation -----------------------------------------------------------------------------------

def _point(task, accuracies, task_end=False):
    return {"task": task, "task_end": task_end, "accuracies": accuracies, "accuracy": float(np.mean(accuracies))}


def test_anytime_metrics_by_hand_on_a_small_curve():
    points = [_point(0, [80.0]), _point(0, [90.0], True),
              _point(1, [60.0, 50.0]), _point(1, [70.0, 80.0], True),
              _point(2, [40.0, 60.0, 30.0]), _point(2, [50.0, 75.0, 90.0], True)]
    metrics = anytime_metrics(points)
    # AAA: mean of 80, 90, 55, 75, 43.33, 71.67
    assert metrics["aaa"] == pytest.approx((80 + 90 + 55 + 75 + 130 / 3 + 215 / 3) / 6)
    # min-ACC: task 0 after it was learned: min(60, 70, 40, 50) = 40; task 1: min(60, 75) = 60
    assert metrics["min_acc"] == pytest.approx(50.0)
    # WC-ACC: 1/3 x the last task's final 90 + 2/3 x min-ACC
    assert metrics["worst_case_accuracy"] == pytest.approx(90 / 3 + 2 / 3 * 50)
    one_task = anytime_metrics(points[:2])
    assert (one_task["aaa"], one_task["min_acc"], one_task["worst_case_accuracy"]) == (85.0, None, 90.0)
    assert anytime_metrics([]) == {"aaa": None, "min_acc": None, "worst_case_accuracy": None}


SMALL = ["--benchmark", "split-mnist", "--method", "er", "--tasks", "2", "--set", "samples_per_task=60",
         "--set", "evaluate=all", "--quiet"]


@pytest.fixture(scope="module")
def anytime_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("anytime")
    result = lamaml("run", "--out", out, *SMALL, "--set", "eval_every=4", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "metrics.json").read_text())


def test_a_run_with_eval_every_reports_aaa_worst_case_accuracy_and_the_curve(anytime_run, data_dir, tmp_path):
    metrics = anytime_run
    curve = metrics["anytime_curve"]
    # 6 batches of 10 per task: points after batches 4 and 8 (the second task's 2nd), and each task's end
    assert [(p["task"], p["batches"], p["task_end"]) for p in curve] == \
        [(0, 4, False), (0, 6, True), (1, 8, False), (1, 12, True)]
    assert [len(p["accuracies"]) for p in curve] == [1, 1, 2, 2]
    for point, row in zip([curve[1], curve[3]], metrics["acc_matrix"]):
        assert point["accuracies"] == [v for v in row[:point["task"] + 1]]      # the matrix row, reused
    assert metrics["aaa"] == pytest.approx(np.mean([p["accuracy"] for p in curve]), abs=1e-3)
    assert metrics["min_acc"] == pytest.approx(min(curve[2]["accuracies"][0], curve[3]["accuracies"][0]), abs=1e-3)
    assert metrics["worst_case_accuracy"] == pytest.approx(curve[3]["accuracies"][1] / 2 + metrics["min_acc"] / 2,
                                                           abs=1e-3)
    plain = tmp_path / "plain"
    assert lamaml("run", "--out", plain, *SMALL, data_dir=data_dir).returncode == 0
    without = json.loads((plain / "metrics.json").read_text())
    assert "aaa" not in without and "anytime_curve" not in without
    assert without["acc_matrix"] == metrics["acc_matrix"] and without["task_losses"] == metrics["task_losses"]


def test_a_killed_run_resumes_with_the_same_anytime_curve(anytime_run, data_dir, tmp_path):
    first = lamaml("run", "--out", tmp_path, *SMALL, "--set", "eval_every=4", "--checkpoint-every", "1b",
                   data_dir=data_dir, fault="batch:9")
    assert first.returncode == -9
    resumed = lamaml("run", "--resume", tmp_path, "--quiet", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["resumed"] is True
    assert metrics["anytime_curve"] == anytime_run["anytime_curve"] and metrics["aaa"] == anytime_run["aaa"]


def test_anytime_samples_read_the_first_samples_of_each_split_and_leave_training_alone(anytime_run, data_dir,
                                                                                         tmp_path):
    def run_with(samples):
        out = tmp_path / str(samples)
        result = lamaml("run", "--out", out, *SMALL, "--set", "eval_every=4", "--set", f"anytime_samples={samples}",
                        data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        return json.loads((out / "metrics.json").read_text())
    whole = run_with(10**6)                 # more than a split holds: the whole split, as without the option
    assert whole["anytime_curve"] == anytime_run["anytime_curve"]
    few = run_with(7)
    assert few["acc_matrix"] == anytime_run["acc_matrix"]
    assert [p["updates"] for p in few["anytime_curve"]] == [p["updates"] for p in anytime_run["anytime_curve"]]
    scores = [a for p in few["anytime_curve"] for a in p["accuracies"]]
    assert all(abs(a * 7 / 100 - round(a * 7 / 100)) < 1e-3 for a in scores)        # k correct of 7
    assert scores != [a for p in anytime_run["anytime_curve"] for a in p["accuracies"]]


def test_scenario_and_eval_every_flags_say_what_set_says(anytime_run, data_dir, tmp_path):
    result = lamaml("run", "--out", tmp_path, *SMALL, "--eval-every", "4", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["anytime_curve"] == anytime_run["anytime_curve"] and metrics["config"]["eval_every"] == 4
    task_il = lamaml("run", "--out", tmp_path / "t", *SMALL, "--scenario", "task-il", data_dir=data_dir)
    assert task_il.returncode == 0 and "er on split-mnist, task-il" in task_il.stdout
    for bad, message in ((["--scenario", "task-il", "--set", "scenario=class-il"], "--scenario and --set scenario"),
                         (["--eval-every", "0"], "--eval-every 0: give K >= 1"),
                         (["--scenario", "class-il", "--benchmark", "mnist-rotations"], "class-il")):
        refused = lamaml("run", "--dry-run", *bad, data_dir=data_dir)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr


def test_estimate_counts_the_evaluations_anytime_evaluation_adds():
    from lamaml.engine.anytime import anytime_evaluations
    # two tasks of 6 batches, every 4: batch 4 (task 0: 1 task), batch 8 (task 1: 2); batch 12 is a task's end
    assert anytime_evaluations([6, 6], [0, 1], 4, "all") == 3
    # evaluate=metrics: after task 1 of 3, its row skipped task 0, which the task-end point adds
    assert anytime_evaluations([6, 6, 6], [0, 1, 2], 100, "metrics") == 1
    # a tenth of each split: every point costs a tenth, and a task's end reads all its seen tasks
    assert anytime_evaluations([6, 6, 6], [0, 1, 2], 100, "metrics", share=0.1) == pytest.approx((1 + 2 + 3) * 0.1)
    assert anytime_evaluations([6, 6], [0, 1], 4, "all", share=0.5) == pytest.approx((2 * 1 + 2 * 2) * 0.5)
