"""A write that fails (a full disk, no permission) costs one line on stderr, never the results:
they are shown before they are written, and a run with checkpoints can write them again by resuming."""
import errno
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from lamaml.atomic import atomic_path, write_json_atomic
from lamaml.errors import RunFailed, WriteFailed
from lamaml.experiments.store import Store

TINY = ["--benchmark", "mnist-rotations", "--tasks", "2", "--set", "samples_per_task=50", "--quiet"]
RA = re.compile(r"retained accuracy \(RA\)\s+(\d+\.\d\d) %")
# The real command, with every write of a metrics.json going to /dev/full, whose writes fail as a full disk's do.
METRICS_ON_A_FULL_DISK = """
import sys
from pathlib import Path
import lamaml.atomic as atomic

def open_on_a_full_disk(path, mode="r", **options):
    return open("/dev/full" if Path(path).name.startswith(".metrics.json.") else path, mode, **options)

atomic.open = open_on_a_full_disk
from lamaml.__main__ import entry
sys.exit(entry())
"""


def lamaml(*args, data_dir, code=None):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    env.pop("LAMAML_FAULT", None)
    command = ["-c", code] if code else ["-m", "lamaml"]
    return subprocess.run([sys.executable, *command, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs root: skipped elsewhere), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk, leave_pages):
    """Fill ``disk`` but for ``leave_pages`` blocks."""
    stat = os.statvfs(disk)
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\0" * (stat.f_bavail - leave_pages) * stat.f_bsize)
    assert os.statvfs(disk).f_bavail == leave_pages


def test_a_disk_that_fills_up_during_the_run_shows_the_results_and_one_line(small_disk, data_dir):
    out = small_disk / "run"
    out.mkdir()
    fill(small_disk, leave_pages=1)     # room for status.json at the start, none for metrics.json at the end
    result = lamaml("run", *TINY, "--out", out, data_dir=data_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (f"lamaml: cannot write {out / 'metrics.json'} (No space left on device); "
                             f"the results are shown above\n")
    assert RA.search(result.stdout) and "backward transfer (BTI)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["status.json"]     # no temporary file left behind


def test_a_disk_full_from_the_start_stops_the_run_before_it_trains(small_disk, data_dir, tmp_path):
    out, store = small_disk / "run", tmp_path / "runs.sqlite"
    out.mkdir()
    fill(small_disk, leave_pages=0)
    result = lamaml("run", *TINY, "--out", out, "--store", store, data_dir=data_dir)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"lamaml: cannot write {out / 'status.json'} (No space left on device)\n"
    assert [(r["status"], r["error"]) for r in Store(store).query()] == [("failed", result.stderr[8:-1])]


def test_metrics_that_cannot_be_written_are_shown_kept_in_the_store_and_written_by_resuming(data_dir, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    out, store = tmp_path / "run", tmp_path / "runs.sqlite"
    failed = lamaml("run", *TINY, "--out", out, "--store", store, "--checkpoint-every", "1", data_dir=data_dir,
                    code=METRICS_ON_A_FULL_DISK)
    assert failed.returncode == 1 and failed.stderr == (
        f"lamaml: cannot write {out / 'metrics.json'} (No space left on device); the run is recorded in {store}; "
        f"the results are shown above; its last checkpoint is kept: lamaml run --resume {out} --store {store}\n")
    shown = float(RA.search(failed.stdout).group(1))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "failed" and status["checkpoint_kept"] is True
    assert not (out / "metrics.json").exists()
    resumed = lamaml("run", "--resume", out, data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert round(metrics["ra"], 2) == shown and metrics["resumed"] is True
    rows = Store(store).query()
    assert [(r["status"], round(r["ra"], 2)) for r in rows] == [("done", shown)]


def test_a_full_disk_in_any_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(WriteFailed) as caught:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert str(caught.value) == f"cannot write {target} (No space left on device)"
    assert isinstance(caught.value, OSError) and isinstance(caught.value, RunFailed)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_folder_that_refuses_writes_names_the_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(WriteFailed, match=re.escape(f"cannot write {tmp_path / 'm.json'} (Permission denied)")):
            write_json_atomic(tmp_path / "m.json", {})
    finally:
        os.chmod(tmp_path, 0o700)


def test_a_read_only_disk_names_the_file(small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(WriteFailed, match=re.escape(f"cannot write {small_disk / 'm.json'} (Read-only file system)")):
        write_json_atomic(small_disk / "m.json", {})


def test_other_errors_inside_the_block_stay_what_they_are(tmp_path):
    with pytest.raises(ConnectionResetError):       # e.g. a download feeding the file: the caller explains it
        with atomic_path(tmp_path / "x"):
            raise ConnectionResetError(errno.ECONNRESET, "reset")


def test_a_refusal_met_outside_lamamls_writers_is_one_line_and_status_1(monkeypatch, capsys):
    from lamaml import cli

    def refused(args):      # e.g. TensorBoard's event file in a folder that refuses it
        raise PermissionError(errno.EACCES, "Permission denied", "/runs/tb/events")
    monkeypatch.setattr(cli, "cmd_list", refused)
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == "lamaml: /runs/tb/events: Permission denied\n"

    def bug(args):          # not the storage's fault: keeps its traceback
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/tmp/gone")
    monkeypatch.setattr(cli, "cmd_list", bug)
    with pytest.raises(FileNotFoundError):
        cli.main(["list"])


def test_a_sweep_whose_store_fills_the_disk_ends_in_one_line(monkeypatch, capsys, tmp_path):
    import sqlite3

    from lamaml import cli
    from lamaml.experiments import sweep

    def full(*args, **kwargs):      # what a worker's store.finish raises on a full disk, re-raised by the pool
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(sweep, "run_sweep", full)
    status = cli.main(["sweep", "--benchmarks", "mnist-rotations", "--methods", "online", "--seeds", "0",
                       "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "disk is full" in err and "Traceback" not in err
