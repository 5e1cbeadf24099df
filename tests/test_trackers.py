"""TensorBoard: each run in its own subfolder, with its hyperparameters."""
import pytest

from lamaml.config import resolve_config
from lamaml.experiments.runs import run_recorded
from lamaml.experiments.trackers import run_folder

pytest.importorskip("torch.utils.tensorboard")


def _scalars_and_plugins(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder)).Reload()
    return events.Tags()["scalars"], events.PluginTagToContent("hparams"), events


def test_two_runs_into_one_folder_get_a_subfolder_each_with_their_hyperparameters(data_dir, tmp_path):
    for opt_lr in (0.3, 0.1):
        config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 50, "opt_lr": opt_lr}, tasks=2)
        run_recorded(config, data_dir=data_dir, download=False, tensorboard=tmp_path)
    folders = sorted(tmp_path.iterdir())     # by start time; the second of one second gets -2
    assert len(folders) == 2 and all(f.name.startswith("mnist-rotations-la-maml-seed0-") for f in folders)
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    for folder, opt_lr in zip(folders, (0.3, 0.1)):
        scalars, hparams, events = _scalars_and_plugins(folder)
        assert [e.step for e in events.Scalars("eval/retained_accuracy")] == [1, 2]     # one run's, not two
        assert "hparam/ra" in scalars and events.Tags()["tensors"] == ["config/text_summary"]
        session = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
        assert session.hparams["params.opt_lr"].number_value == opt_lr
        assert session.hparams["glances"].number_value == 5 and session.hparams["tasks"].number_value == 2


def test_a_resumed_run_logs_into_its_own_folder_and_a_new_one_never_shares_it(tmp_path):
    config = resolve_config("mnist-rotations", "la-maml", seed=3)
    resume = {"started_at": "2026-01-02T03:04:05+00:00"}
    assert run_folder(tmp_path, config, resume).name == "mnist-rotations-la-maml-seed3-20260102T030405"
    (tmp_path / "mnist-rotations-la-maml-seed3-20260102T030405").mkdir()
    assert run_folder(tmp_path, config, resume).name == "mnist-rotations-la-maml-seed3-20260102T030405"
    first = run_folder(tmp_path, config)
    first.mkdir()
    assert run_folder(tmp_path, config) != first


def test_a_sweep_logs_each_run_into_its_own_subfolder(data_dir, tmp_path, monkeypatch):
    # Run after the test above in one process, this froze CI (stop 20) while sweep workers were
    # forked: the worker hung in libgomp in its first parallel torch op. They are spawned now.
    from lamaml.experiments.sweep import SweepSpec, run_sweep
    monkeypatch.chdir(tmp_path)                        # relative paths: the driver makes them absolute
    spec = SweepSpec(benchmarks=["mnist-rotations"], methods=["la-maml"], seeds=[0, 1], tasks=2,
                     set={"samples_per_task": 50})
    results = run_sweep(spec, tmp_path / "runs.sqlite", 1, str(data_dir), tensorboard="tb")
    assert [r["status"] for r in results] == ["done", "done"]
    folders = sorted((tmp_path / "tb").iterdir())
    assert len(folders) == 2 and all("seed" in f.name for f in folders)
    for folder in folders:
        scalars, hparams, _ = _scalars_and_plugins(folder)
        assert "final/ra" in scalars and hparams
