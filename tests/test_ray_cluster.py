"""Sweeps on a real Ray cluster (issue 14): paths resolved in the driver, and one line for a wrong address or token.

The cluster is started by ``ray start --head`` on 127.0.0.1 with token authentication on (as Ray 2.60's
``ray start`` turns it on whenever ``~/.ray/auth_token`` exists), in its own folder, its own ports, its
own temporary dir, and is killed by the test (its process group and its workers), never by ``ray stop``,
which would stop every Ray instance of the machine.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO
from lamaml.errors import UserError
from lamaml.experiments.engines import absolute_paths, check_gpu_share, ray_resources
from lamaml.experiments.ray_cluster import host_and_port
from lamaml.experiments.store import Store
from lamaml.experiments.sweep import SweepSpec, run_sweep

SWEEP = ["--benchmarks", "mnist-rotations", "--methods", "la-maml,c-maml", "--grid", "opt_lr=0.1,0.3",
         "--tasks", "2", "--set", "samples_per_task=50", "--jobs", "2"]     # 3 runs: c-maml has no opt_lr
RUNS = 3
RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def test_every_engine_gets_the_store_and_data_folder_as_absolute_paths_of_the_driver(tmp_path, monkeypatch):
    import lamaml.experiments.engines as engines
    import lamaml.experiments.sweep as sweep
    handed = []
    monkeypatch.setattr(sweep, "check_data", lambda *args: None)      # the data check is tested in test_sweep.py
    monkeypatch.setattr(engines, "run_local", lambda pending, store, data, *rest: handed.append((store, data)) or [])
    monkeypatch.setattr(engines, "run_on_ray",
                        lambda pending, store, data, *rest, **options: handed.append((store, data)) or [])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAMAML_DATA", "from-env")
    spec = SweepSpec(benchmarks=["mnist-rotations"], methods=["la-maml"], tasks=1)
    for engine in ("local", "ray"):
        run_sweep(spec, Path("runs/a.sqlite"), 1, None, engine)
        run_sweep(spec, Path("runs/b.sqlite"), 1, "../given", engine, address="127.0.0.1:1")
    assert handed == [(str(tmp_path / "runs/a.sqlite"), str(tmp_path / "from-env")),
                      (str(tmp_path / "runs/b.sqlite"), str(tmp_path.parent / "given"))] * 2
    monkeypatch.delenv("LAMAML_DATA")
    assert absolute_paths("~/s.sqlite", None) == (str(Path.home() / "s.sqlite"), str(tmp_path / "data"))


def test_a_ray_task_of_cuda_runs_asks_for_a_gpu_share_and_an_auto_one_only_where_the_cluster_has_gpus():
    cpu, cuda, auto = ({"device": device} for device in ("cpu", "cuda", "auto"))
    assert ray_resources([cpu], 4, 1.0) == {"num_cpus": 1}
    assert ray_resources([cuda], 4, 0.25) == {"num_cpus": 1, "num_gpus": 0.25}
    assert ray_resources([auto, auto], 1, 1.0) == {"num_cpus": 1, "num_gpus": 1.0}
    assert ray_resources([auto], 0, 1.0) == {"num_cpus": 1}                 # auto on a CPU cluster: the CPU
    assert ray_resources([{}], 4, 1.0) == {"num_cpus": 1}                   # device's default: cpu
    with pytest.raises(UserError, match="device=cuda with --engine ray: the Ray cluster has no GPU"):
        ray_resources([cuda], 0, 1.0)
    for share in (0.25, 1, 2.0):
        assert check_gpu_share(share) == share
    for share in (0, -1, -2.0, 1.5):
        with pytest.raises(UserError, match=f"--gpus-per-run {share:g}: must be a share of one GPU"):
            check_gpu_share(share)


def test_ray_shows_the_gpu_to_a_task_that_asks_for_one_and_hides_it_from_one_that_does_not():
    """Why ray_resources exists: Ray gives a GPU only to a task that asks for one (on a GPU node it sets
    CUDA_VISIBLE_DEVICES="" for the others), so a cuda run would find none. A local Ray instance that
    declares one GPU (none need be there)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        visible = ray.remote(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        for device, expected in (("cuda", {"0"}), ("auto", {"0"}), ("cpu", {"", None})):
            options = ray_resources([{"device": device}], ray.cluster_resources().get("GPU", 0), 1.0)
            assert ray.get(visible.options(**options).remote()) in expected, device
    finally:
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV and k != "LAMAML_DATA"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
               OMP_NUM_THREADS="1", LAMAML_NO_DOWNLOAD="1", **changes)
    return env


def _process_tree(pgid: int) -> set[int]:
    """The processes of group ``pgid`` and all their descendants (Ray's workers start sessions of their own)."""
    parents, members = {}, set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        if int(fields[2]) == pgid:
            members.add(pid)
    grown = True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in members} - members
        members |= children
        grown = bool(children)
    return members


def _kill_tree(pgid: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        alive = _process_tree(pgid)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster with token authentication: (address, its token)."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    if not Path("/proc").is_dir():
        pytest.skip("killing the test's Ray cluster needs /proc (Linux)")
    token = secrets.token_hex(32)
    home = tmp_path_factory.mktemp("cluster-home")          # where `ray start` runs: its workers' folder
    temp_dir = tempfile.mkdtemp(prefix="lr-", dir="/tmp")   # short: Ray's AF_UNIX socket paths live under it
    port = _free_port()
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    command = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
               "--object-store-memory=100000000", "--include-dashboard=false", "--disable-usage-stats",
               f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
               f"--temp-dir={temp_dir}"]
    starter = subprocess.Popen(command, cwd=home, env=_environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        try:
            output, _ = starter.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.skip("`ray start --head` did not start a cluster in 120 s")
        if starter.returncode != 0:
            pytest.skip("`ray start --head` could not start a cluster here: " + " | ".join(output.splitlines()[-3:]))
        yield f"127.0.0.1:{port}", token, home
    finally:
        _kill_tree(starter.pid)     # `ray start` leads the group its servers run in
        shutil.rmtree(temp_dir, ignore_errors=True)


def _sweep(address: str, folder: Path, wait: bool = True, **env):
    command = [sys.executable, "-m", "lamaml.cli", "sweep", *SWEEP, "--engine", "ray", "--address", address,
               "--store", "results/runs.sqlite", "--data-dir", "mnist-link"]
    if wait:
        return subprocess.run(command, cwd=folder, env=_environment(**env), capture_output=True, text=True,
                              timeout=300)
    return subprocess.Popen(command, cwd=folder, env=_environment(**env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _driver_folder(tmp_path: Path, data_dir: Path) -> Path:
    folder = tmp_path / "driver"
    folder.mkdir()
    (folder / "mnist-link").symlink_to(data_dir)       # a relative --data-dir; the cluster runs elsewhere
    return folder


def test_a_sweep_on_a_cluster_from_another_folder_records_every_run_once_in_the_named_store(cluster, data_dir,
                                                                                          tmp_path):
    address, token, home = cluster
    folder = _driver_folder(tmp_path, data_dir)
    first = _sweep(address, folder, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert first.returncode == 0, first.stderr
    assert f"{RUNS} run(s) done, 0 failed" in first.stdout
    rows = Store(folder / "results" / "runs.sqlite").query()
    assert [r["status"] for r in rows] == ["done"] * RUNS and len({r["config_hash"] for r in rows}) == RUNS
    assert not (home / "results").exists() and not (home / "mnist-link").exists()
    again = _sweep(address, folder, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert again.returncode == 0, again.stderr
    assert f"{RUNS} combinations, {RUNS} already done, 0 to run" in again.stderr
    assert len(Store(folder / "results" / "runs.sqlite").query()) == RUNS


def test_a_sweep_on_a_cluster_killed_with_sigkill_and_rerun_has_every_combination_once(cluster, data_dir,
                                                                                       tmp_path):
    address, token, _ = cluster
    folder = _driver_folder(tmp_path, data_dir)
    store = folder / "results" / "runs.sqlite"
    driver = _sweep(address, folder, wait=False, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    deadline = time.time() + 240
    while time.time() < deadline and not (store.exists() and Store(store).query(["status=done"])):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)      # the driver only: its tasks run in the cluster's workers
    driver.wait()
    assert len(Store(store).query(["status=done"])) < RUNS, "the sweep finished before it could be killed"
    # Ray stops a dead driver's tasks by itself; wait for it, as the local test's killpg does at once
    while time.time() < deadline and any(_alive(row["pid"]) for row in Store(store).query(["status=running"])):
        time.sleep(0.2)
    again = _sweep(address, folder, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert again.returncode == 0, again.stderr
    done = Store(store).query(["status=done"])
    assert len(done) == len({row["config_hash"] for row in done}) == RUNS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("env, says", [
    ({}, "the cluster there uses token authentication: run with RAY_AUTH_MODE=token and its token in $RAY_AUTH_TOKEN"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, "the cluster there refuses this token: give it its own"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "no-such-file"}, "RAY_AUTH_TOKEN_PATH is set but"),
], ids=["token-mode-off", "wrong-token", "no-token"])
def test_a_driver_without_the_clusters_token_gets_one_line_naming_the_address(cluster, tmp_path, env, says, data_dir):
    address, _, _ = cluster
    (tmp_path / "mnist-link").symlink_to(data_dir)     # the data is there: what fails is the connection
    started = time.time()
    result = _sweep(address, tmp_path, **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"lamaml: --address {address}: {says}"), result.stderr
    assert "$RAY_AUTH_TOKEN, a file named by $RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token" in lines[-1]
    assert len(lines) == 2 and lines[0].startswith("sweep: 3 combinations"), result.stderr    # no Ray noise
    assert time.time() - started < 60         # not Ray's 20 tries a second apart, plus start-up
    assert not (tmp_path / "results" / "runs.sqlite").exists() or not Store(tmp_path / "results/runs.sqlite").query()


def test_nothing_listening_at_the_address_is_one_line_in_seconds(tmp_path, data_dir):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    (tmp_path / "mnist-link").symlink_to(data_dir)
    address = f"127.0.0.1:{_free_port()}"
    result = _sweep(address, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[1:] == [
        f"lamaml: --address {address}: no Ray cluster answers there (Connection refused); start one with "
        f"`ray start --head --port={address.split(':')[1]}` or correct the address"]


def test_the_probe_splits_host_and_port_and_leaves_other_addresses_to_ray():
    assert host_and_port("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert host_and_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_and_port("[::1]:6380") == ("::1", 6380)
    assert [host_and_port(a) for a in ("auto", "local", "head:", ":6379", "head:port")] == [None] * 5
