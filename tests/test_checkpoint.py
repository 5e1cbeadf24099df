"""Kill a run anywhere, resume it, and get exactly the numbers of a run that was never killed."""
import json
import os

import pytest
import torch

from conftest import run_lamaml as lamaml
from lamaml.engine.checkpoint import CURRENT, PREVIOUS, Checkpointer, Every, load_latest, read_checkpoint
from lamaml.errors import UserError
from lamaml.methods.base import Method

SMALL = ["--tasks", "3", "--set", "samples_per_task=40", "--set", "glances=2", "--quiet"]
COMPARED = ("ra", "bti", "bwt", "fwt", "learning_accuracy", "acc_matrix", "baseline_accuracy", "task_losses",
            "updates", "config", "tasks")


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    result = lamaml("run", "--out", out, "--method", "la-maml", *SMALL, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("every, faults", [
    ("1b", ["batch:3"]),                           # mid-task, after a few checkpoints
    ("1b", ["checkpoint-written:5"]),              # new file written, not yet in place
    ("1b", ["checkpoint-rotated:6"]),              # old one moved aside, new one not yet in place
    ("1b", ["batch:9", "batch:2"]),                # killed again while resuming
    ("1", ["batch:10"]),                           # task-level checkpoints, killed inside task 2
    ("1b", ["batch:12"]),                          # killed after the last batch, before the end
])
def test_a_killed_run_resumes_to_the_uninterrupted_metrics(every, faults, uninterrupted, data_dir, tmp_path):
    first = lamaml("run", "--out", tmp_path, "--method", "la-maml", *SMALL, "--checkpoint-every", every,
                   data_dir=data_dir, fault=faults[0])
    assert first.returncode == -9 and not (tmp_path / "metrics.json").exists()
    for fault in faults[1:] + [None]:
        resumed = lamaml("run", "--resume", tmp_path, "--quiet", data_dir=data_dir, fault=fault)
        if fault:
            assert resumed.returncode == -9
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["resumed"] is True
    for key in COMPARED:
        assert metrics[key] == uninterrupted[key], key


def _save(folder, value):
    Checkpointer(folder, Every(1, "tasks"), {"config": {}}).save({"value": torch.tensor([value])})


def test_a_corrupted_checkpoint_is_reported_and_the_previous_one_used(tmp_path):
    _save(tmp_path, 1.0)
    _save(tmp_path, 2.0)
    raw = bytearray((tmp_path / CURRENT).read_bytes())
    raw[-10] ^= 0xFF
    (tmp_path / CURRENT).write_bytes(bytes(raw))
    state, warnings = load_latest(tmp_path)
    assert state["value"].item() == 1.0
    assert len(warnings) == 1 and "checkpoint.pt is corrupt" in warnings[0]
    assert warnings[0].endswith(f"; resuming from the previous checkpoint, {PREVIOUS}")
    (tmp_path / PREVIOUS).write_bytes(b"garbage")
    with pytest.raises(UserError, match="no usable checkpoint"):
        load_latest(tmp_path)


def test_a_refused_checkpoint_with_no_previous_one_says_there_is_none(tmp_path):
    _save(tmp_path, 1.0)
    (tmp_path / CURRENT).write_bytes(b"garbage")
    with pytest.raises(UserError) as caught:
        load_latest(tmp_path)
    assert str(caught.value) == (f"no usable checkpoint in {tmp_path}: {tmp_path / CURRENT} is corrupt (its checksum "
                                 f"does not match its content); there is no previous checkpoint ({PREVIOUS}) to fall "
                                 f"back on")


def test_a_refused_checkpoint_is_reported_in_one_line_without_torch_warnings(data_dir, tmp_path):
    import hashlib
    import pickle
    payload = pickle.dumps({"format": 2, "x": os.system}, protocol=4)    # torch warns about protocol 4
    (tmp_path / CURRENT).write_bytes(hashlib.sha256(payload).digest() + payload)
    result = lamaml("run", "--resume", tmp_path, data_dir=data_dir)
    assert result.returncode == 2 and result.stderr == (
        f"lamaml: no usable checkpoint in {tmp_path}: {tmp_path / CURRENT} is not a lamaml checkpoint or holds objects "
        f"it may not (UnpicklingError); there is no previous checkpoint ({PREVIOUS}) to fall back on\n")


def test_a_resumed_run_finishes_its_row_in_the_store_it_was_recorded_in(data_dir, tmp_path):
    from lamaml.experiments.store import Store
    out, store = tmp_path / "run", tmp_path / "runs.sqlite"
    killed = lamaml("run", "--out", out, "--store", store, *SMALL, "--checkpoint-every", "1b", data_dir=data_dir,
                    fault="batch:5")
    assert killed.returncode == -9 and [r["status"] for r in Store(store).query()] == ["running"]
    resumed = lamaml("run", "--resume", out, "--quiet", data_dir=data_dir)      # no --store: the folder knows it
    assert resumed.returncode == 0, resumed.stderr
    rows = Store(store).query()
    assert [(r["id"], r["status"]) for r in rows] == [(1, "done")]
    assert rows[0]["ra"] == json.loads((out / "metrics.json").read_text())["ra"]
    assert json.loads((out / "status.json").read_text()) == {"status": "done", "store": str(store), "run_id": 1}


def test_resume_on_a_folder_without_checkpoint_says_so(tmp_path):
    with pytest.raises(UserError, match="no checkpoint there"):
        load_latest(tmp_path)


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path):
    import hashlib
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    payload = pickle.dumps({"format": 1, "x": Exploit()})
    path = tmp_path / CURRENT
    path.write_bytes(hashlib.sha256(payload).digest() + payload)     # a valid checksum, hostile content
    with pytest.raises(UserError, match="holds objects it may not"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("text, expected", [("2", "2"), ("10m", "10m"), ("0.5m", "0.5m"), ("50b", "50b")])
def test_checkpoint_frequency_parses(text, expected):
    assert str(Every.parse(text)) == expected


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "2x", "1.5b"])
def test_a_bad_checkpoint_frequency_is_refused(text):
    with pytest.raises(UserError, match="--checkpoint-every"):
        Every.parse(text)


class _Diverging(Method):
    """A stand-in method: finite losses until call ``at``, then NaN (or an infinite weight)."""

    joint = False

    def __init__(self, at, weight=False):
        self.model = torch.nn.Linear(2, 2)
        self.calls, self.at, self.weight = 0, at, weight

    def observe(self, x, y, task, *, first_sight):
        self.calls += 1
        if self.calls >= self.at:
            if not self.weight:
                return torch.tensor(float("nan"))
            with torch.no_grad():
                self.model.weight[0, 0] = float("inf")
        return torch.tensor(1.0)

    def predict(self, x, task):
        return torch.zeros(len(x), 2)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def _stream(tasks=2, n=20):
    from lamaml.data import stream_from_data
    data = [((torch.randn(n, 2), torch.randint(0, 2, (n,))), (torch.randn(n, 2), torch.randint(0, 2, (n,))))
            for _ in range(tasks)]
    return stream_from_data(data)


def test_a_nan_loss_stops_the_run_naming_where_and_keeps_the_last_good_checkpoint(tmp_path):
    from lamaml.engine import Checkpoints, train
    from lamaml.errors import RunFailed
    checkpointer = Checkpointer(tmp_path, Every(1, "batches"), {"config": {}})
    with pytest.raises(RunFailed, match="the loss became nan at task 1, epoch 0, batch 2"):
        train(_Diverging(at=7), _stream(), epochs=1, batch_size=5, glances=1,
              generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
              plugins=[Checkpoints(checkpointer)])
    state, _ = load_latest(tmp_path)
    assert state["method"]["calls"] == 6 and state["progress"]["task"] == 1 and state["progress"]["batch"] == 2


def test_an_infinite_weight_stops_the_run_at_the_end_of_its_task():
    from lamaml.engine import train
    from lamaml.errors import RunFailed
    with pytest.raises(RunFailed, match=r"parameter weight became inf during task 0"):
        train(_Diverging(at=2, weight=True), _stream(), epochs=1, batch_size=5, glances=1,
              generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))


@pytest.mark.parametrize("method", ["icarl", "meta-bgd", "vr-mcl"])
def test_methods_with_exemplars_or_weight_distributions_resume_exactly(method, data_dir, tmp_path):
    """iCaRL's exemplars and class means, Meta-BGD's means and deviations, VR-MCL's previous weights
    and momentum survive a kill inside task 2."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["--method", method, *SMALL]
    assert lamaml("run", "--out", whole, *args, data_dir=data_dir).returncode == 0
    first = lamaml("run", "--out", killed, *args, "--checkpoint-every", "1b", data_dir=data_dir, fault="batch:7")
    assert first.returncode == -9
    resumed = lamaml("run", "--resume", killed, "--quiet", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    for key in COMPARED:
        assert got[key] == expected[key], key


def test_a_run_resumed_on_another_thread_count_says_its_time_had_both(data_dir, tmp_path):
    """The thread count is not part of a run's identity, so a sweep may resume a one-thread run on two: its
    metrics name both counts (the tables mark such a time), and a run on one count names that one."""
    from lamaml.config import resolve_config
    from lamaml.engine import run
    config = resolve_config("mnist-rotations", "online", {"samples_per_task": 20}, tasks=2)
    whole = run(config, data_dir=data_dir, download=False, checkpoint_dir=tmp_path, checkpoint_every=Every(1, "tasks"))
    assert whole["train_threads_used"] == [1] and whole["config"]["train_threads"] == 1   # auto: an MLP on one
    state, _ = load_latest(tmp_path)
    assert state["train_threads_used"] == [1]
    resumed = run(config.model_copy(update={"train_threads": 2}), data_dir=data_dir, download=False, resume=state,
                  checkpoint_dir=tmp_path, checkpoint_every=Every(1, "tasks"))
    assert resumed["train_threads_used"] == [1, 2] and resumed["ra"] == whole["ra"]
    again = run(config, data_dir=data_dir, download=False, resume=state)
    assert again["train_threads_used"] == [1]
