import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from lamaml.errors import UserError
from lamaml.experiments.processes import alive as _alive
from lamaml.experiments.store import Store, config_hash, parse_filter


def _config(seed, method="la-maml", glances=5):
    return {"benchmark": "mnist-rotations", "method": method, "seed": seed, "glances": glances,
            "params": {"alpha_init": 0.15}}


def _writer(path, worker, n):
    store = Store(path)
    for i in range(n):
        run_id = store.start(_config(seed=worker * 1000 + i))
        store.finish(run_id, {"ra": float(i), "bti": -1.0, "train_time_s": 0.1, "wall_time_s": 0.2})


def test_four_concurrent_writers_record_200_runs_with_none_lost(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path)
    processes = [multiprocessing.get_context("spawn").Process(target=_writer, args=(path, w, 50)) for w in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
        assert p.exitcode == 0
    rows = Store(path).query()
    assert len(rows) == 200 and {r["status"] for r in rows} == {"done"}
    assert len({r["seed"] for r in rows}) == 200


def test_filters_select_by_column_and_by_nested_config(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, method, glances in [(0, "la-maml", 5), (1, "la-maml", 10), (0, "c-maml", 5)]:
        store.finish(store.start(_config(seed, method, glances)), {"ra": 70.0 + seed})
    assert [r["seed"] for r in store.query(["method=la-maml", "ra>=71"])] == [1]
    assert [r["method"] for r in store.query(["config.glances=5"])] == ["la-maml", "c-maml"]
    assert len(store.query(["config.params.alpha_init<0.2"])) == 3
    assert store.done_hashes() == {config_hash(_config(0)), config_hash(_config(1, glances=10)),
                                   config_hash(_config(0, "c-maml"))}


def test_a_text_column_is_matched_as_the_text_given_even_when_it_reads_as_a_number(tmp_path):
    """A config hash or host of digits (0123..., 12e45...) is text: read as a number it matched nothing."""
    store = Store(tmp_path / "s.sqlite")
    store.finish(store.start(_config(0)), {"ra": 70.0})
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET config_hash='0123456789012345', host='12e4567890'")
    assert len(store.query(["config_hash=0123456789012345"])) == 1
    assert len(store.query(["host=12e4567890"])) == 1 and len(store.query(["host!=12e4567890"])) == 0
    assert parse_filter("seed=3")[1] == [3] and parse_filter("status=null")[0] == "status IS NULL"


def test_filters_reach_every_metric_a_run_recorded(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for seed, aaa in [(0, 61.5), (1, 70.25), (2, None)]:     # seed 2 ran without anytime evaluation
        store.finish(store.start(_config(seed)), {"ra": 70.0, **({"aaa": aaa} if aaa is not None else {})})
    assert [r["seed"] for r in store.query(["metrics.aaa>65"])] == [1]
    assert [r["seed"] for r in store.query(["metrics.aaa<=61.5"])] == [0]
    with pytest.raises(UserError, match="did you mean metrics.aaa"):
        store.query(["metric.aaa>1"])


def test_filters_on_true_false_null_and_not_equal_match_the_runs_a_reader_means(tmp_path):
    """true/false are JSON booleans (SQLite reads 1/0), null a setting left null, != keeps runs where the key
    is null or absent, and a run written without a setting (as before it existed) reads as its default."""
    store = Store(tmp_path / "s.sqlite")
    store.finish(store.start({**_config(0), "tasks": None}), {"ra": 70.0})
    store.finish(store.start({**_config(1), "tasks": 3, "deterministic": True}), {"ra": 71.0})
    store.finish(store.start(_config(2)), {"ra": 72.0})                 # names neither setting
    seeds = lambda *where: [r["seed"] for r in store.query(list(where))]  # noqa: E731
    assert seeds("config.deterministic=true") == [1]
    assert seeds("config.deterministic=false") == [0, 2]          # unnamed: its default, as the run ran
    assert seeds("config.cuda_precision=float32") == [0, 1, 2]
    assert seeds("config.tasks=null") == [0, 2] and seeds("config.tasks!=null") == [1]
    assert seeds("config.tasks!=3") == [0, 2]                     # null is not 3
    assert seeds("config.tasks<5") == [1]                         # nor is it below 5
    assert seeds("metrics.aaa!=50") == [0, 1, 2]                  # no run measured it: none equals 50
    with pytest.raises(UserError, match="null compares only with = or !="):
        store.query(["config.tasks>null"])


@pytest.mark.parametrize("hostile", [
    "method=x' OR '1'='1",
    "method=la-maml; DROP TABLE runs; --",
    "config.glances=5) OR 1=1 --",
])
def test_a_filter_carrying_sql_matches_nothing_and_changes_nothing(hostile, tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    store.finish(store.start(_config(0)), {"ra": 1.0})
    assert store.query([hostile]) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


@pytest.mark.parametrize("hostile", ["seed OR 1=1", "ra; DROP TABLE runs=1", "config.x'y=1", "1=1", "ra;x=1"])
def test_a_filter_key_that_is_not_a_known_column_is_refused(hostile):
    with pytest.raises(UserError, match="--where"):
        parse_filter(hostile)


@pytest.mark.parametrize("malformed", ["ra>>75", "ra==75", "ra=>75", "ra<>75", "ra>=", "method="])
def test_a_malformed_filter_is_refused_with_the_allowed_form(malformed):
    with pytest.raises(UserError) as error:
        parse_filter(malformed)
    message = str(error.value)
    assert message.startswith(f"--where {malformed!r}: malformed filter; expected KEY OP VALUE")
    assert "\n" not in message and "config.params.alpha_init=0.1" in message


@pytest.mark.parametrize("key, suggestion", [
    ("config.alpha_init", "config.params.alpha_init"),      # a hyperparameter is under params
    ("alpha_init", "config.params.alpha_init"),
    ("params.glances", "config.glances"),                   # a run field is not
    ("config.params.alpha_int", "config.params.alpha_init"),
    ("methd", "method"),
])
def test_a_filter_key_that_would_match_nothing_is_refused_with_the_right_key(key, suggestion):
    with pytest.raises(UserError, match=f"unknown key '{key}'; did you mean {suggestion}\\?$"):
        parse_filter(f"{key}=0.3")


def test_a_refused_filter_exits_2_with_one_line(tmp_path):
    from test_cli import lamaml
    path = tmp_path / "s.sqlite"
    Store(path).finish(Store(path).start(_config(0)), {"ra": 70.0})
    for command in ("report", "runs"):
        result = lamaml(command, "--store", path, "--where", "ra>>75")
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "--where 'ra>>75': malformed filter" in result.stderr


def test_a_file_that_is_not_a_store_gets_a_clear_error(tmp_path):
    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="cannot open it as a results store"):
        Store(bad)


def test_a_setting_at_its_default_does_not_change_a_runs_identity():
    """Fields added later at their defaults leave older stores usable: same hash with or without them."""
    from lamaml.config import resolve_config
    full = resolve_config("mnist-rotations", "la-maml").model_dump()
    older = {k: v for k, v in full.items() if k not in ("setting", "analyses")}
    older["params"] = {k: v for k, v in full["params"].items() if k != "fast_path"}
    assert config_hash(older) == config_hash(full)
    assert config_hash({**full, "glances": 4}) != config_hash(full)
    assert config_hash({**full, "params": {**full["params"], "fast_path": False}}) != config_hash(full)


def test_the_thread_count_is_not_part_of_a_runs_identity_but_the_device_is():
    """A cell trained on two threads is that cell's run: a sweep skips it and its checkpoint resumes on one."""
    from lamaml.config import resolve_config
    one = resolve_config("tinyimagenet", "mer", tasks=5).model_dump()
    assert config_hash({**one, "train_threads": 2}) == config_hash(one)
    assert config_hash({**one, "device": "cuda"}) != config_hash(one)
    assert config_hash({**one, "eval_batch_size": 100}) != config_hash(one)
    for numerics in ({"cuda_precision": "tf32"}, {"deterministic": True}):   # other numbers on a GPU
        assert config_hash({**one, **numerics}) != config_hash(one)
    assert config_hash({**one, "cuda_precision": "float32", "deterministic": False}) == config_hash(one)


def test_config_hashes_are_pinned_so_stores_written_earlier_keep_their_runs():
    """Hashes computed by the code that wrote existing stores: a change here orphans their runs."""
    from lamaml.config import resolve_config
    assert config_hash(_config(0)) == "7ed116229c241ab7"         # alpha_init 0.15 and seed 0 are defaults
    assert config_hash({"benchmark": "x", "method": "no-such-method", "seed": 1, "params": {"a": 1}}) == \
        "734c44d378131cd9"
    assert config_hash(resolve_config("mnist-rotations", "la-maml").model_dump()) == "7ed116229c241ab7"
    assert config_hash(resolve_config("mnist-many-permutations", "mer", seed=3).model_dump()) == "d535541415c38ba8"
    assert config_hash(resolve_config("cifar100", "la-maml", setting="multi").model_dump()) == "f91882052239abd2"


def test_what_the_cli_reads_from_a_store_is_a_library_call(tmp_path):
    """report_store and load_runs, as `lamaml report --out` and `lamaml plot --store` use them."""
    from lamaml.experiments.report import report_store
    from lamaml.experiments.runs import load_runs
    path = tmp_path / "s.sqlite"
    store = Store(path)
    for seed, ra in [(0, 70.0), (1, 74.0)]:
        store.finish(store.start(_config(seed)), {"ra": ra, "bti": -2.0, "train_time_s": 1.0, "seed": seed})
    store.fail(store.start(_config(2)), "diverged")
    text = report_store(path, ["method=la-maml"], "csv", out=tmp_path / "out" / "report.csv")
    assert (tmp_path / "out" / "report.csv").read_bytes().decode() == text and ",2,72.0,2.828427" in text
    assert [run["seed"] for run in load_runs([], path, ["ra>71"])] == [1]
    with pytest.raises(UserError, match="--store .*nope.sqlite: no results store there"):
        report_store(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()


def _claimer(path, barrier, configs, queue):
    store = Store(path)
    barrier.wait()
    queue.put([store.claim(config).run_id is not None for config in configs])


def test_four_processes_claiming_the_same_20_combinations_at_once_get_each_exactly_once(tmp_path):
    path, configs = tmp_path / "runs.sqlite", [_config(seed) for seed in range(20)]
    Store(path)
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_claimer, args=(path, barrier, configs, queue)) for _ in range(4)]
    for p in processes:
        p.start()
    won = [queue.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(120)
        assert p.exitcode == 0
    assert [sum(column) for column in zip(*won)] == [1] * 20
    assert len(Store(path).query(["status=running"])) == 20


def test_a_combination_running_in_a_live_process_is_refused_to_a_second_claim(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    first = store.claim(_config(0))
    assert first.run_id is not None and first.holder == ""
    assert store.claim(_config(0)) == (None, f"running in process {os.getpid()}")
    assert store.claim(_config(1)).run_id is not None        # another combination is free
    assert len(store.query(["status=running"])) == 2


def test_a_combination_left_running_by_a_dead_process_is_taken_over(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = store.claim(_config(0)).run_id
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, abandoned))
    taken = store.claim(_config(0)).run_id
    rows = {row["id"]: row for row in store.query()}
    assert taken not in (None, abandoned) and rows[taken]["status"] == "running"
    assert rows[abandoned]["status"] == "failed" and rows[abandoned]["error"] == "interrupted (its process died)"


def test_a_done_combination_is_never_claimed_again_but_a_failed_one_is(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.fail(store.claim(_config(0)).run_id, "diverged")
    done = store.claim(_config(0)).run_id
    store.finish(done, {"ra": 70.0})
    assert store.claim(_config(0)) == (None, "already done")
    with sqlite3.connect(store.path) as conn:      # a row hashed by older code is still recognised as done
        conn.execute("UPDATE runs SET config_hash='hashed-by-older-code' WHERE id=?", (done,))
    assert store.claim(_config(0)) == (None, "already done")
    assert [r["status"] for r in store.query()] == ["failed", "done"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_a_killed_process_not_yet_reaped_counts_as_dead():
    child = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(child.pid, 9)
        time.sleep(0.5)                             # not reaped: a zombie, which kill(pid, 0) still finds
        os.kill(child.pid, 0)
        assert not _alive(child.pid) and _alive(os.getpid())
    finally:
        child.wait()


def test_a_resumed_run_names_every_code_it_trained_with():
    from lamaml.engine.results import code_commit
    from lamaml.engine.run import code_used
    from lamaml.version import __version__
    now = f"{__version__} {code_commit()}"
    assert code_used(None) == [now] and code_used({"code_used": [now]}) == [now]
    assert code_used({"code_used": ["0.1.0 abc1234"]}) == ["0.1.0 abc1234", now]
    assert code_used({"config": {}}) == ["unrecorded", now]          # a checkpoint from before this was kept


def test_the_order_of_the_analyses_leaves_a_runs_identity_unchanged():
    one = {**_config(0), "analyses": ["lr-stats", "alignment"]}
    assert config_hash(one) == config_hash({**one, "analyses": ["alignment", "lr-stats"]})
    assert config_hash(one) != config_hash({**one, "analyses": ["alignment"]})


def test_a_row_whose_process_number_another_process_now_holds_is_taken_over(tmp_path):
    """After a container or machine restart a dead run's pid may belong to a live process: its start time
    tells them apart (where /proc has it), so the run is not skipped as running for ever."""
    from lamaml.experiments.store import process_start
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc: the process start time cannot be read here")
    store = Store(tmp_path / "s.sqlite")
    config = _config(0)
    first = store.claim(config).run_id
    assert store.claim(config).holder == f"running in process {os.getpid()}"    # this very process: alive
    with sqlite3.connect(store.path) as conn:      # as if an earlier process with this pid had claimed it
        conn.execute("UPDATE runs SET pid_start = pid_start - 3600 WHERE id=?", (first,))
    taken = store.claim(config)
    assert taken.run_id is not None and taken.run_id != first
    assert {r["id"]: r["status"] for r in store.query([])}[first] == "failed"


def test_a_store_made_by_two_processes_at_once_waits_out_sqlites_immediate_lock(tmp_path, monkeypatch):
    """Found in CI: two `run --seeds` workers opening one new store, one failed with "database is locked"."""
    create, tries = Store._create, []

    def locked_twice(self):
        tries.append(1)
        if len(tries) <= 2:
            raise sqlite3.OperationalError("database is locked")
        create(self)
    monkeypatch.setattr(Store, "_create", locked_twice)
    store = Store(tmp_path / "runs.sqlite")
    assert len(tries) == 3 and store.query([]) == []
    monkeypatch.setattr(Store, "_create", lambda self: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    with pytest.raises(UserError, match=r"--store .*runs2.sqlite: cannot open it as a results store \(disk I/O error\)"):
        Store(tmp_path / "runs2.sqlite")
