"""train_threads: "auto" trains a conv net (and batched seeds under MKL's strict mode) on the process's
threads, an MLP on one."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import lamaml
from lamaml.config import resolve_config
from lamaml.engine.run import threads_used, with_threads
from lamaml.engine.threads import AUTO_CAP, training_threads
from lamaml.errors import UserError

CPU = torch.device("cpu")


def _conv_net():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("available", [1, 2, 3, AUTO_CAP + 2])
def test_auto_gives_a_conv_net_the_process_threads_up_to_the_cap_and_an_mlp_one(threads, available, monkeypatch):
    threads(available)
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert training_threads("auto", _conv_net(), CPU) == min(available, AUTO_CAP)
    assert training_threads("auto", _mlp(), CPU, seeds=5) == 1        # as each seed's separate run: same bits
    monkeypatch.setenv("MKL_CBWR", "AUTO,STRICT")                     # products round the same on any count
    assert training_threads("auto", _mlp(), CPU, seeds=5) == min(available, AUTO_CAP)
    assert training_threads("auto", _mlp(), CPU) == 1
    assert training_threads(3, _mlp(), CPU) == training_threads(3, _conv_net(), CPU) == 3   # a number is kept
    assert training_threads("auto", _conv_net(), torch.device("cuda")) is None                # threads do not compute


def test_a_runs_config_records_the_count_auto_resolved_to(threads):
    """config.json, checkpoints and the store read the number, never "auto" (a table counts threads)."""
    threads(2)
    config = resolve_config("mnist-rotations", "er", {})
    assert config.train_threads == "auto"
    on_conv = with_threads(config, SimpleNamespace(model=_conv_net()), CPU)
    on_mlp = with_threads(config, SimpleNamespace(model=_mlp()), CPU)
    assert (on_conv.train_threads, on_mlp.train_threads) == (2, 1)
    assert threads_used(on_conv, None) == [2]
    assert threads_used(on_mlp, {"config": {"train_threads": 2}}) == [1, 2]           # resumed on another count
    assert with_threads(config.model_copy(update={"train_threads": 3}), SimpleNamespace(model=_mlp()),
                        CPU).train_threads == 3


class ThreadsSeen(nn.Module):
    """A conv net that notes the thread count of every training-mode forward."""

    def __init__(self):
        super().__init__()
        self.net, self.seen = _conv_net(), set()

    def forward(self, x):
        if self.training:
            self.seen.add(torch.get_num_threads())
        return self.net(x.view(-1, 1, 4, 4))


def _tasks():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 16, generator=generator), torch.randint(0, 3, (20,), generator=generator)
    return [((x, y), (x, y))]


def test_fit_trains_a_conv_net_on_the_process_threads_and_evaluates_on_them_after(threads):
    threads(2)
    model = ThreadsSeen()
    lamaml.fit(model, _tasks(), method="er", progress=False)
    assert model.seen == {2} and torch.get_num_threads() == 2
    model = ThreadsSeen()
    lamaml.fit(model, _tasks(), method="er", progress=False, train_threads=1)
    assert model.seen == {1} and torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, "two", 1.5, True])
def test_a_bad_thread_count_names_the_value_and_what_is_allowed(bad):
    with pytest.raises(UserError, match=r"train_threads=.*must be an integer >= 1 or 'auto'"):
        lamaml.fit(_mlp(), _tasks(), method="er", progress=False, train_threads=bad)
    if bad is not True:      # a config, as pydantic does for ints, reads True as 1
        with pytest.raises(UserError, match="train_threads"):
            resolve_config("mnist-rotations", "er", {"train_threads": bad})


def test_a_sweeps_projection_times_its_runs_on_the_threads_each_job_will_have(threads, tmp_path, monkeypatch):
    """With auto, a conv net trains on its job's share of the cores: the projection, timed in the parent
    process (all cores), must time it on that share too, or it would project a run twice as fast."""
    from lamaml.experiments import projection
    from lamaml.experiments.store import Store
    seen = []

    def timed(config, data_dir, download, warmup, timed):
        seen.append(torch.get_num_threads())
        return SimpleNamespace(total_s=60.0, lower_bound=None)

    monkeypatch.setattr(projection, "estimate", timed)
    threads(2)
    config = resolve_config("tinyimagenet", "la-maml", {}).model_dump()
    total, _, per_run = projection.project([[config]], Store(tmp_path / "s.sqlite"), None, jobs=2, threads=1)
    assert seen == [1] and torch.get_num_threads() == 2 and per_run == [60.0]


def test_a_sweeps_projection_reads_only_history_that_trained_on_the_threads_its_run_will(threads, tmp_path,
                                                                                          monkeypatch):
    """train_threads is not part of a run's identity, but a conv net on two threads takes about 1/1.6 of
    its one-thread time: a finished one-thread run must not project a two-thread one."""
    from lamaml.experiments import projection
    from lamaml.experiments.store import Store
    monkeypatch.setattr(projection, "estimate", lambda *a, **k: SimpleNamespace(total_s=60.0, lower_bound=None))
    store = Store(tmp_path / "s.sqlite")

    def finished(config, threads_used, seconds, seed):
        store.finish(store.start({**config, "seed": seed, "train_threads": threads_used}), {"wall_time_s": seconds})
    conv = resolve_config("tinyimagenet", "la-maml", {}).model_dump()       # train_threads: auto
    finished(conv, 1, 100.0, seed=1)
    per_run = lambda jobs, job_threads: projection.project([[conv]], store, None, jobs, job_threads)[2]  # noqa: E731
    assert per_run(1, 2) == [60.0]            # auto gives it 2 threads: the 1-thread run says nothing, timed
    assert per_run(2, 1) == [100.0]           # one thread per job: that history applies
    finished(conv, 2, 50.0, seed=2)
    assert per_run(1, 2) == [50.0]
    mlp = resolve_config("mnist-rotations", "la-maml", {}).model_dump()     # auto: one thread whatever the job has
    finished(mlp, 1, 20.0, seed=1)
    assert projection.project([[mlp]], store, None, 1, 2)[2] == [20.0]
