import io
import runpy
import sys

import numpy as np
import pytest
import torch
from torch import nn

import lamaml
from conftest import REPO


def test_the_api_page_example_is_the_example_file_and_it_learns(capsys):
    example = (REPO / "examples" / "own_model.py").read_text()
    assert example.split('"""', 2)[2].strip() in (REPO / "docs" / "api.md").read_text()
    runpy.run_path(str(REPO / "examples" / "own_model.py"), run_name="__main__")
    ra = float(capsys.readouterr().out.split()[1])
    assert ra > 90.0           # four easy tasks: far above the 12.5% of chance over 8 classes


def test_fit_accepts_datasets_and_rejects_a_model_with_too_few_outputs():
    data = torch.utils.data.TensorDataset(torch.randn(30, 4), torch.randint(0, 3, (30,)))
    result = lamaml.fit(nn.Linear(4, 3), [(data, data)], method="c-maml", glances=1)
    assert result.acc_matrix.shape == (1, 1)
    with pytest.raises(lamaml.UserError, match="the model has 2 outputs but the tasks' labels go up to 2"):
        lamaml.fit(nn.Linear(4, 2), [(data, data)])
    with pytest.raises(lamaml.UserError, match="alpha_init"):
        lamaml.fit(nn.Linear(4, 3), [(data, data)], alpha_init="fast")



def test_fit_computes_where_the_model_is_unless_given_a_device(monkeypatch):
    """A model the user put on a GPU is not moved back to the CPU: without ``device`` fit trains it where
    its parameters are (a model on PyTorch's meta device stands in for a GPU one here)."""
    import lamaml.api as api
    seen = []
    monkeypatch.setattr(api, "check_model", lambda model, stream, device: seen.append(device) or 1 / 0)
    data = torch.utils.data.TensorDataset(torch.randn(30, 4), torch.randint(0, 3, (30,)))
    for model, device, expected in ((nn.Linear(4, 3, device="meta"), None, "meta"), (nn.Linear(4, 3), None, "cpu"),
                                    (nn.Linear(4, 3), "meta", "meta")):
        with pytest.raises(ZeroDivisionError):      # stop once fit has chosen the device
            lamaml.fit(model, [(data, data)], device=device)
        assert seen.pop().type == expected
    with pytest.raises(lamaml.UserError, match="cuda_precision='fp16': must be 'float32' or 'tf32'"):
        lamaml.fit(nn.Linear(4, 3), [(data, data)], cuda_precision="fp16")


# -- a built-in benchmark through the API is the run `lamaml run` makes -----------------------------

@pytest.mark.parametrize("given", [{}, {"glances": 2, "alpha_init": 0.1}])
def test_fit_on_a_benchmark_gives_the_accuracy_matrix_of_lamaml_run(data_dir, given):
    from lamaml.config import resolve_config
    from lamaml.engine import run
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 50, **given}, tasks=2)
    expected = run(config, data_dir=data_dir, download=False)
    bench = lamaml.benchmark("mnist-rotations", data_dir=str(data_dir), tasks=2, samples_per_task=50,
                             download=False)
    result = lamaml.fit(bench.model("la-maml"), bench, "la-maml", progress=False, **given)
    assert np.round(result.acc_matrix, 4).tolist() == expected["acc_matrix"]
    assert result.updates == expected["updates"] == 2 * 5 * given.get("glances", 5)   # the preset's 5 glances
    assert result.acc_matrix[1, 1] > 20                # it learned: chance is 10%


def test_build_benchmark_takes_the_data_dir_as_a_string(data_dir):
    from lamaml.data import build_benchmark
    stream = build_benchmark("mnist-rotations", str(data_dir), 0, 20, download=False)
    assert len(stream) == 20 and stream[0].n_train == 20


# -- evaluation in eval mode -----------------------------------------------------------------------

class ModeRecorder(nn.Module):
    """A dropout net that records, at each forward, (training mode, gradients enabled)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.frozen = nn.Dropout(0.1).eval()     # a module the user keeps in eval mode
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.frozen(self.net(x))


def _easy_tasks(n_tasks=2, n=30, features=4, labels_of=lambda t: (0, 1, 2)):
    generator = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(n_tasks):
        classes = torch.tensor(labels_of(t))
        y = classes[torch.randint(0, len(classes), (n,), generator=generator)]
        x = torch.randn(n, features, generator=generator) + 3 * nn.functional.one_hot(y, features).float()
        tasks.append(((x, y), (x, y)))
    return tasks


def test_fit_evaluates_in_eval_mode_and_gives_back_each_modules_training_mode():
    model = ModeRecorder()
    result = lamaml.fit(model, _easy_tasks(), method="online", progress=False)
    evaluations = [training for training, grad in model.calls if not grad]
    training = [training for training, grad in model.calls if grad]
    assert len(evaluations) >= 1 + 3 and not any(evaluations)     # the probe, the baseline, after each task
    assert len(training) == result.updates and all(training)
    assert model.training and model.net[2].training and not model.frozen.training


def test_the_engines_evaluation_restores_the_mode_it_found():
    from lamaml.engine.evaluate import evaluate_all
    from lamaml.methods import method_class
    model = ModeRecorder().eval()
    stream = lamaml.stream_from_data(_easy_tasks())
    method = method_class("online")(model, method_class("online").Params(), torch.Generator())
    evaluate_all(method, stream, torch.device("cpu"), 100)
    assert not model.training and model.calls == [(False, False)] * 2
    model.train()
    evaluate_all(method, stream, torch.device("cpu"), 100)
    assert model.training and model.net[2].training and model.calls[-1] == (False, False)


# -- task-aware heads when tasks name their classes -------------------------------------------------

def _fixed_logits_model():
    """Logits [5, 0, 1, 0] for every input: class 0 (task 0's) wins over everything, class 2 over 3."""
    model = nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([5.0, 0.0, 1.0, 0.0]))
    return model


def _two_tasks_of_their_own_classes():
    x = torch.zeros(10, 4)
    return [((x, torch.zeros(10, dtype=torch.long)),) * 2, ((x, torch.full((10,), 2)),) * 2]


def test_tasks_that_name_their_classes_get_task_aware_heads():
    (train_0, test_0), (train_1, test_1) = _two_tasks_of_their_own_classes()
    tasks = [lamaml.Task(0, train=train_0, test=lambda: test_0, n_train=10, classes=[0, 1]),
             {"train": train_1, "test": test_1, "classes": [2, 3]}]
    # lr: no step moves the logits, so the accuracies show only how predictions are read
    result = lamaml.fit(_fixed_logits_model(), tasks, method="online", lr=1e-12, progress=False)
    assert result.heads == "task-aware"
    assert result.acc_matrix[-1].tolist() == [100.0, 100.0]     # task 1 reads classes 2 and 3 only


def test_tasks_without_classes_share_one_head():
    result = lamaml.fit(_fixed_logits_model(), _two_tasks_of_their_own_classes(), method="online", lr=1e-12,
                        progress=False)
    assert result.heads == "single"
    assert result.acc_matrix[-1].tolist() == [100.0, 0.0]       # class 0 wins everywhere


def test_a_label_outside_its_tasks_classes_is_a_user_error():
    (train, test), _ = _two_tasks_of_their_own_classes()
    with pytest.raises(lamaml.UserError, match=r"task 0: labels \[0\] are not among the task's classes \[1, 2\]"):
        lamaml.fit(nn.Linear(4, 3), [{"train": train, "test": test, "classes": [1, 2]}])


# -- inputs checked before training ------------------------------------------------------------------

def test_inputs_the_model_cannot_take_are_a_user_error_naming_the_shapes():
    with pytest.raises(lamaml.UserError, match=r"inputs of shape \(4,\) per sample \(torch.float32\), whose first "
                                               r"layer Linear takes 5 features: mat1 and mat2"):
        lamaml.fit(nn.Sequential(nn.Linear(5, 3)), _easy_tasks(), progress=False)
    with pytest.raises(lamaml.UserError, match=r"the model returned \(2, 3, 1\) for a batch of 2"):
        lamaml.fit(nn.Sequential(nn.Linear(4, 3), nn.Unflatten(1, (3, 1))), _easy_tasks(), progress=False)


@pytest.mark.parametrize("labels, message", [
    (torch.full((30,), -1), r"task 0 train: label -1; class indices start at 0"),
    (torch.full((30,), 0.5), r"task 0 train: label 0.5; labels are class indices"),
    (torch.zeros(30, 3), r"task 0 train: labels of shape \(30, 3\); give one class index per sample"),
])
def test_labels_that_are_not_class_indices_are_a_user_error(labels, message):
    with pytest.raises(lamaml.UserError, match=message):
        lamaml.fit(nn.Linear(4, 3), [((torch.randn(30, 4), labels), (torch.randn(30, 4), torch.zeros(30)))])


def test_uint8_inputs_are_images_scaled_to_0_1_and_other_integers_are_refused():
    pixels = torch.tensor([[0, 51, 255, 255]] * 30, dtype=torch.uint8)
    stream = lamaml.stream_from_data([((pixels, torch.zeros(30)), (pixels, torch.zeros(30)))])
    assert stream[0].train()[0][0].tolist() == pytest.approx([0.0, 0.2, 1.0, 1.0])
    result = lamaml.fit(nn.Linear(4, 1), [((pixels, torch.zeros(30)),) * 2], progress=False)
    assert result.acc_matrix.tolist() == [[100.0]]
    with pytest.raises(lamaml.UserError, match="inputs of dtype torch.int64; give floating-point inputs"):
        lamaml.fit(nn.Linear(4, 1), [((pixels.long(), torch.zeros(30)),) * 2])


# -- protocol defaults, progress and the per-task callback -------------------------------------------

def test_fit_defaults_to_five_glances_and_reports_each_task_to_on_task_end(capsys):
    rows = []
    result = lamaml.fit(nn.Linear(4, 3), _easy_tasks(n_tasks=3), method="online",
                        on_task_end=lambda task, row: rows.append((task, row)))
    assert result.updates == 3 * 3 * 5                  # 3 tasks x 3 batches of 10 x 5 glances
    assert [task for task, _ in rows] == [0, 1, 2]
    np.testing.assert_array_equal(np.stack([row for _, row in rows]), result.acc_matrix)
    assert capsys.readouterr().err == ""                # the bar is off when stderr is not a terminal


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_on_a_terminal_the_progress_bar_counts_every_batch_unless_turned_off(monkeypatch, progress):
    monkeypatch.setattr(sys, "stderr", Terminal())
    lamaml.fit(nn.Linear(4, 3), _easy_tasks(n_tasks=3), method="online", batch_size=7, progress=progress)
    shown = sys.stderr.getvalue()
    assert ("15/15" in shown and "task=3/3" in shown) if progress else shown == ""   # ceil(30 / 7) batches a task


@pytest.mark.parametrize("method", ["er-ace", "der", "der++", "vr-mcl"])
@pytest.mark.parametrize("named_classes", [False, True])
def test_the_successor_methods_learn_a_users_model_through_fit(method, named_classes):
    from lamaml.methods import METHODS
    if method not in METHODS:
        pytest.skip(f"{method} is not registered")
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(2):      # two separable tasks of two classes each
        x = torch.randn(500, 6, generator=g)
        y = (x[:, t] > 0).long() + 2 * t
        task = {"train": (x[:400], y[:400]), "test": (x[400:], y[400:])}
        tasks.append({**task, "classes": [2 * t, 2 * t + 1]} if named_classes else task)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 4))
    result = lamaml.fit(model, tasks, method, glances=3, progress=False, seed=0)
    assert result.heads == ("task-aware" if named_classes else "single")
    assert np.isfinite(result.acc_matrix[-1]).all() and result.acc_matrix[0, 0] > 70     # it learned task 0


# -- models the methods would get wrong: refused before training, or handled ---------------------------

def test_a_model_with_frozen_parameters_is_refused_before_training():
    """Every method steps every parameter it is given (La-MAML's closed form would move frozen weights)."""
    for method in ("la-maml", "er"):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        model[0].requires_grad_(False)
        with pytest.raises(lamaml.UserError, match=r"frozen parameters \(0\.weight, 0\.bias: requires_grad=False\)"):
            lamaml.fit(model, _easy_tasks(), method=method, progress=False)


def test_batchnorm_is_refused_where_a_method_runs_single_samples_and_trains_elsewhere():
    def model():
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    for method in ("la-maml", "c-maml", "mer", "gem"):
        with pytest.raises(lamaml.UserError, match=rf"{method} runs the model on single samples or under vmap, "
                                                   r"where BatchNorm has no batch statistics \(1\)"):
            lamaml.fit(model(), _easy_tasks(), method=method, progress=False)
    assert lamaml.fit(model(), _easy_tasks(), method="er", glances=1, progress=False).ra > 0


class _TiedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_the_look_ahead_of_a_model_with_shared_weights_moves_every_use_of_them():
    """Fast weights are passed under each parameter's first name; the model's other use of it must follow."""
    from lamaml.methods.lookahead.autograd import AutogradBackend
    torch.manual_seed(0)
    model, x = _TiedNet(), torch.randn(5, 4)
    fast = {name: p + 0.5 for name, p in model.named_parameters()}
    shifted = _TiedNet()
    shifted.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in shifted.parameters():      # the shared weight once, as one parameter
            p.add_(0.5)
    assert torch.allclose(AutogradBackend(model, None).forward(fast, x), shifted(x), atol=1e-6)


def test_the_closed_form_is_chosen_for_linear_and_relu_modules_only():
    from lamaml.methods.lookahead.closed_form import is_plain_mlp
    from lamaml.models import MLP
    assert is_plain_mlp(nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    assert is_plain_mlp(MLP(4, (8,), 3))
    for other in (nn.ReLU6(), nn.Hardtanh(0.0, 50.0), nn.Dropout(0.0)):    # ReLU on small inputs, not on all
        assert not is_plain_mlp(nn.Sequential(nn.Linear(4, 8), other, nn.Linear(8, 3))), other

    class Clamped(nn.Module):       # Linear and ReLU modules, but a forward that clamps
        def __init__(self):
            super().__init__()
            self.one, self.two = nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.two(torch.relu(self.one(x)).clamp(max=20.0))
    assert not is_plain_mlp(Clamped())


def test_a_model_with_more_outputs_than_the_tasks_classes_trains_and_never_predicts_the_spare_ones():
    (train_0, test_0), (train_1, test_1) = _two_tasks_of_their_own_classes()
    model = nn.Linear(4, 6)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 1.0, 9.0, 9.0]))     # spare outputs 4 and 5 highest
    tasks = [{"train": train_0, "test": test_0, "classes": [0, 1]}, {"train": train_1, "test": test_1,
                                                                      "classes": [2, 3]}]
    result = lamaml.fit(model, tasks, method="online", lr=1e-12, progress=False)
    assert result.heads == "task-aware" and result.method.heads.shape == (2, 6)
    assert result.method.predict(torch.zeros(3, 4), 1).argmax(1).tolist() == [3, 3, 3]


def test_predict_after_fit_is_in_eval_mode_and_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    result = lamaml.fit(model, _easy_tasks(), method="er", glances=1, progress=False)
    x = torch.randn(50, 4)
    assert torch.equal(result.method.predict(x, None), result.method.predict(x, None))
    assert model.training


def test_a_model_in_eval_mode_trains_so_with_a_warning():
    with pytest.warns(UserWarning, match="the model is in eval mode"):
        lamaml.fit(nn.Linear(4, 3).eval(), _easy_tasks(), method="online", progress=False)


def test_an_unknown_hyperparameter_or_device_is_a_user_error_naming_what_is_allowed():
    with pytest.raises(lamaml.UserError, match=r"alpha_int: Extra inputs are not permitted; la-maml's "
                                               r"hyperparameters: .*alpha_init"):
        lamaml.fit(nn.Linear(4, 3), _easy_tasks(), alpha_int=0.1, progress=False)
    with pytest.raises(lamaml.UserError, match=r"device='gpu': not a device; use cpu, cuda, cuda:N or auto"):
        lamaml.fit(nn.Linear(4, 3), _easy_tasks(), device="gpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(lamaml.UserError, match=r"device=cuda:0: no CUDA GPU is visible to PyTorch"):
            lamaml.fit(nn.Linear(4, 3), _easy_tasks(), device="cuda:0", progress=False)
