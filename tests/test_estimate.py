"""A projected time before a run: the counts it multiplies are the run's own, and it trains nothing."""
import json

import numpy as np
import pytest

from lamaml import cli
from lamaml.config import resolve_config
from lamaml.engine import run
from lamaml.durations import duration
from lamaml.engine.estimate import estimate, evaluation_count


@pytest.mark.parametrize("evaluate, validation, expected", [
    ("all", False, 3 + 9), ("seen", False, 3 + 2 + 3 + 3), ("metrics", False, 3 + 2 + 2 + 3),
    ("metrics", True, 2 * (3 + 2 + 2 + 3)), ("joint", False, 3 + 3)])
def test_the_evaluations_of_a_three_task_run_are_counted_by_hand(evaluate, validation, expected):
    assert evaluation_count(3, evaluate, validation) == expected


@pytest.mark.parametrize("method, evaluate", [("la-maml", "metrics"), ("er", "seen"), ("iid", "all")])
def test_the_projection_counts_the_updates_and_evaluations_the_run_makes(data_dir, method, evaluate):
    config = resolve_config("mnist-rotations", method, {"samples_per_task": 40, "evaluate": evaluate,
                                                        **({"iterations": 7} if method == "iid" else {})}, tasks=3)
    projected = estimate(config, data_dir, download=False, warmup=1, timed=2)
    metrics = run(config, data_dir=data_dir, download=False)
    assert projected.updates == metrics["updates"]
    evaluated = np.isfinite(np.array(metrics["acc_matrix"], dtype=float)).sum() + len(metrics["baseline_accuracy"])
    assert projected.evaluations == evaluated
    assert projected.train_s > 0 and projected.eval_s > 0 and projected.lower_bound is None


def test_gem_is_projected_as_a_lower_bound(data_dir):
    config = resolve_config("mnist-rotations", "gem", {"samples_per_task": 20}, tasks=2)
    projected = estimate(config, data_dir, download=False, warmup=1, timed=1)
    assert projected.lower_bound and any("at least" in line for line in projected.lines())


def test_estimate_and_dry_run_print_the_projection_and_write_nothing(data_dir, tmp_path, capsys):
    tiny = ["--data-dir", str(data_dir), "--tasks", "2", "--set", "samples_per_task=30", "--out", str(tmp_path / "run")]
    assert cli.main(["run", "--estimate", *tiny]) == 0
    assert capsys.readouterr().out.startswith("projected time: ")
    assert cli.main(["run", "--dry-run", *tiny]) == 0
    projected = json.loads(capsys.readouterr().out)["projected"]
    assert projected["updates"] == 2 * 3 * 5 and projected["evaluations"] == 2 + 2 + 2
    assert projected["train_s"] > 0         # 3 batches a task, all warm-up: timed anyway, not projected at 0 s
    assert not any((tmp_path / "run").iterdir())      # checked for writing, nothing written


def test_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (12.4, 600, 3 * 3600)] == ["12 s", "10 min", "3.0 h"]


def test_a_sweep_projects_from_the_stores_history_and_times_only_what_it_lacks(data_dir, tmp_path, monkeypatch):
    from lamaml.experiments import projection
    from lamaml.experiments.store import Store
    store = Store(tmp_path / "runs.sqlite")
    done = resolve_config("mnist-rotations", "online", {"samples_per_task": 20}, tasks=1).model_dump()
    run_id, _ = store.claim(done)
    store.finish(run_id, {"ra": 50.0, "bti": 0.0, "wall_time_s": 40.0, "train_time_s": 30.0})
    timed = []
    monkeypatch.setattr(projection, "estimate", lambda config, *a, **k: timed.append(config.method) or
                        type("E", (), {"total_s": 10.0, "lower_bound": None})())
    other = resolve_config("mnist-rotations", "er", {"samples_per_task": 20}, tasks=1).model_dump()
    pending = [{**done, "seed": 1}, {**done, "seed": 2}, other, {**other, "seed": 1}]
    total, notes, per_run = projection.project([[c] for c in pending], store, str(data_dir), jobs=2)
    assert timed == ["er"]                           # online's seeds come from history, er is timed once
    assert total == (40 + 40 + 10 + 10) / 2 and notes == [] and per_run == [40, 40, 10, 10]
    assert projection.project([pending[:1]], store, str(data_dir), jobs=4)[0] == 40   # never below the longest run
    # --batch-seeds: a configuration's seeds go to one worker; at most their times one after another
    batched, notes, _ = projection.project([pending[:2], pending[2:]], store, str(data_dir), jobs=5)
    assert batched == 40 + 40 and notes[-1].startswith("--batch-seeds: each configuration's seeds projected")


def test_a_run_that_resumes_from_its_checkpoint_is_projected_for_what_it_has_left(tmp_path):
    from lamaml.engine.checkpoint import Checkpointer, Every
    from lamaml.experiments import projection
    from lamaml.experiments.engines import checkpoint_folder
    from lamaml.experiments.store import Store
    store = Store(tmp_path / "runs.sqlite")
    done = resolve_config("mnist-rotations", "online", {"samples_per_task": 20, "batch_size": 10},
                          tasks=4).model_dump()
    run_id, _ = store.claim(done)
    store.finish(run_id, {"ra": 50.0, "bti": 0.0, "wall_time_s": 40.0, "train_time_s": 30.0})
    killed = {**done, "seed": 1}
    # 20 samples in batches of 10: 2 batches a task, 8 in the run; task 2's first batch done: 3 of 8
    Checkpointer(checkpoint_folder(store.path, killed), Every(1, "tasks"), {"config": killed}).save(
        {"progress": {"task": 1, "epoch": 0, "batch": 1, "order": list(range(20)), "train_time": 6.0}})
    total, notes, per_run = projection.project([[killed], [{**done, "seed": 2}]], store, None, jobs=1)
    assert per_run == [40 * 5 / 8, 40] and total == 65.0
    assert notes == ["mnist-rotations online seed 1: resumes from its checkpoint, 38% of its training done"]


def test_updates_are_timed_once_the_replay_memory_holds_a_full_replay_batch(data_dir, monkeypatch):
    from lamaml.engine import estimate as module
    sizes = []
    real = module.learn_batch

    def spy(method, *args, **kwargs):
        sizes.append(method.memory.size)
        return real(method, *args, **kwargs)
    monkeypatch.setattr(module, "learn_batch", spy)
    config = resolve_config("mnist-rotations", "mer", {"samples_per_task": 60, "replay_batch_size": 25}, tasks=1)
    estimate(config, data_dir, download=False, warmup=1, timed=2)
    assert sizes[-2:] == [25, 26] and len(sizes) == 27      # batch 1: warm-up stretched until 25 are stored


def test_each_timed_batch_takes_all_its_glances(data_dir, monkeypatch):
    from lamaml.engine import estimate as module
    glances = []
    real = module.learn_batch

    def spy(method, *args, **kwargs):
        glances.append(kwargs["glances"])
        return real(method, *args, **kwargs)
    monkeypatch.setattr(module, "learn_batch", spy)
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 60}, tasks=1)
    projected = estimate(config, data_dir, download=False, warmup=1, timed=2)
    assert glances == [5, 5, 5] and projected.updates == 6 * 5      # ms per update divides a batch's time by 5


def test_a_resumed_runs_history_is_its_training_and_evaluation_not_its_last_process_wall_time(tmp_path):
    from lamaml.experiments import projection
    from lamaml.experiments.store import Store
    store = Store(tmp_path / "runs.sqlite")
    config = resolve_config("mnist-rotations", "online", {"samples_per_task": 20}, tasks=4).model_dump()
    for seed, metrics in ((0, {"wall_time_s": 40.0, "train_time_s": 30.0, "eval_time_s": 5.0}),
                          (1, {"wall_time_s": 3.0, "train_time_s": 35.0, "eval_time_s": 5.0, "resumed": True})):
        run_id, _ = store.claim({**config, "seed": seed})
        store.finish(run_id, {"ra": 50.0, "bti": 0.0, **metrics})
    assert list(projection.history(store).values()) == [(40.0 + 40.0) / 2]     # not (40 + 3) / 2


def test_a_sweep_run_keeps_its_checkpoint_after_a_failure_a_rerun_can_get_past(tmp_path, monkeypatch):
    """A full disk or data missing on a node: the rerun resumes; a diverging loss: it would diverge again."""
    import lamaml.engine
    from lamaml.engine.checkpoint import Checkpointer, Every
    from lamaml.errors import DataError, RunFailed, WriteFailed
    from lamaml.experiments.engines import checkpoint_folder, run_one
    config = resolve_config("mnist-rotations", "online", {"samples_per_task": 20}, tasks=4).model_dump()
    store = tmp_path / "runs.sqlite"
    folder = checkpoint_folder(store, config)
    for error, kept in ((WriteFailed("cannot write checkpoint.pt (No space left on device)"), True),
                        (DataError("no MNIST files in /data on this node"), True),
                        (RunFailed("the loss became nan in task 2, batch 7"), False)):
        Checkpointer(folder, Every(1, "tasks"), {"config": config}).save({"progress": {"task": 1}})
        resumed = []

        def failing(*args, resume=None, **kwargs):
            resumed.append(resume is not None)
            raise error
        monkeypatch.setattr(lamaml.engine, "run", failing)
        outcome = run_one(config, str(store), None, 1, checkpoint_every="1")
        assert outcome["status"] == "failed" and resumed == [True]
        assert (folder / "checkpoint.pt").exists() is kept, error


def test_a_claimed_run_never_stays_running_after_an_error_before_training(tmp_path, monkeypatch):
    """An error between the claim and the training (the batched seeds' preparation, the TensorBoard
    plugin) ends in the rows: another sweep would otherwise skip them as running in a live worker."""
    import lamaml.engine.seeds
    import lamaml.experiments.progress
    from lamaml.errors import DataError, UserError
    from lamaml.experiments.engines import run_group, run_one
    from lamaml.experiments.store import Store
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 20}, tasks=2).model_dump()
    store = tmp_path / "runs.sqlite"

    def no_data(*args, **kwargs):
        raise DataError("no MNIST files in /data on this node")
    monkeypatch.setattr(lamaml.engine.seeds, "prepare_seeds", no_data)
    outcomes = run_group([config, {**config, "seed": 1}], str(store), None, 1)
    assert [o["status"] for o in outcomes] == ["failed", "failed"]

    def no_tensorboard(*args, **kwargs):
        raise UserError("--tensorboard needs TensorBoard: pip install 'lamaml[tensorboard]'")
    monkeypatch.setattr(lamaml.experiments.progress, "RunPlugins", no_tensorboard)
    assert run_one({**config, "seed": 2}, str(store), None, 1, tensorboard=str(tmp_path / "tb"))["status"] == "failed"
    assert [r["status"] for r in Store(store).query([])] == ["failed"] * 3


def test_a_bug_in_a_claimed_run_is_recorded_as_a_crash_and_raised(tmp_path, monkeypatch):
    """A non-user error (a bug) ends every claimed row failed with 'crashed: ...' and still propagates,
    in a single run and in a batched group of seeds."""
    import lamaml.engine
    import lamaml.engine.seeds
    from lamaml.experiments.engines import run_group, run_one
    from lamaml.experiments.store import Store
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 20}, tasks=2).model_dump()
    store = tmp_path / "runs.sqlite"

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(lamaml.engine, "run", bug)
    monkeypatch.setattr(lamaml.engine.seeds, "prepare_seeds", bug)
    with pytest.raises(ZeroDivisionError):
        run_one(config, str(store), None, 1)
    with pytest.raises(ZeroDivisionError):
        run_group([{**config, "seed": 1}, {**config, "seed": 2}], str(store), None, 1)
    rows = Store(store).query([])
    assert [r["status"] for r in rows] == ["failed"] * 3
    assert all(r["error"] == "crashed: ZeroDivisionError: a bug" for r in rows)


def test_batched_seeds_times_are_left_out_of_the_history_and_a_task_boundary_checkpoint_has_its_share(tmp_path):
    """A batched seed's wall time is a share of its batch's (not one run's); a checkpoint saved at a task's
    end (--checkpoint-every N tasks: no batch order saved) still tells its share."""
    from lamaml.experiments import projection
    from lamaml.experiments.engines import share_done
    from lamaml.experiments.store import Store
    store = Store(tmp_path / "runs.sqlite")
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 20}, tasks=4).model_dump()
    for seed, metrics in ((0, {"wall_time_s": 40.0}), (1, {"wall_time_s": 13.0, "batched_seeds": 3})):
        run_id, _ = store.claim({**config, "seed": seed})
        store.finish(run_id, {"ra": 50.0, "bti": 0.0, **metrics})
    assert list(projection.history(store).values()) == [40.0]
    assert share_done({"task": 2, "epoch": 0, "batch": 0, "order": None}, 5, 1, 10) == 0.4
    assert share_done({"task": 1, "epoch": 1, "batch": 0, "order": None}, 2, 2, 10) == 0.75
    assert share_done({"task": 0, "epoch": 0, "batch": 0, "order": None}, 5, 1, 10) is None
