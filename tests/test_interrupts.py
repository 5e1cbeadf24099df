"""Ctrl-C at any moment of `lamaml run` ends it with one line and status 130, never a traceback:
while torch imports (seconds, C++ underneath) as much as while it trains."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

# 20 short tasks: still training seconds after torch has loaded, whatever the machine's load
LONG = ["run", "--tasks", "20", "--set", "samples_per_task=100", "--quiet"]


def _default_ctrl_c():
    # An ignored SIGINT stays ignored across exec, and an earlier test in this process may leave it ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, data_dir, command=("-m", "lamaml")):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    env.pop("LAMAML_FAULT", None)
    return subprocess.Popen([sys.executable, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO, preexec_fn=_default_ctrl_c)


def _torch_loading(pid: int) -> bool:
    """torch's shared libraries are mapped: its import (seconds of it) is under way."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return "libtorch" in maps.read()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 1.8])
def test_ctrl_c_while_torch_loads_ends_in_one_line_and_status_130(delay, data_dir):
    # Timed from the moment torch's libraries appear, not from the start: Python's own start-up (site,
    # .pth files) comes before any line of lamaml and takes a time that depends on the machine's load
    process = _start(LONG, data_dir)
    deadline = time.monotonic() + 120
    while not _torch_loading(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("lamaml: interrupted"), err


def test_ctrl_c_inside_an_import_exits_at_once_with_one_line(tmp_path, data_dir):
    (tmp_path / "slow_module.py").write_text("import os, signal, time\n"
                                            "os.kill(os.getpid(), signal.SIGINT)\n"
                                            "time.sleep(30)\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import lamaml.cli\n"
            "lamaml.cli.main = lambda: __import__('slow_module') and 0     # a command that imports\n"
            "from lamaml.__main__ import entry\n"
            "sys.exit(entry())\n")
    started = time.monotonic()
    process = _start([str(tmp_path)], data_dir, command=("-c", code))
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err, out) == (130, "lamaml: interrupted\n", "")
    assert time.monotonic() - started < 20          # did not wait for the import to finish


def test_an_ignored_ctrl_c_stays_ignored():
    from lamaml.__main__ import catch_interrupts
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)     # e.g. a background job of a script
    try:
        catch_interrupts()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
