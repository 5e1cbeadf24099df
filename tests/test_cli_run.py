"""`lamaml run` as a batch job meets it: progress in a log file, how to resume an interrupted run, a
finished run left alone, a dry run that checks what the run would check."""
import json
import os
import re
import subprocess
import sys

from conftest import REPO

TINY = ["--tasks", "3", "--set", "samples_per_task=50", "--set", "glances=1"]


def lamaml(*args, data_dir, stderr=subprocess.PIPE, env=None):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir), **(env or {}))
    env.pop("LAMAML_FAULT", None)
    return subprocess.run([sys.executable, "-m", "lamaml.cli", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, env=env, cwd=REPO, timeout=300)


def test_without_a_terminal_a_run_writes_one_progress_line_per_task_to_stderr(data_dir, tmp_path):
    with open(tmp_path / "err", "w") as err:      # `lamaml run ... 2>err`: stderr is a file, not a TTY
        result = lamaml("run", *TINY, data_dir=data_dir, stderr=err)
    assert result.returncode == 0
    lines = (tmp_path / "err").read_text().splitlines()
    progress = [m for m in (re.fullmatch(r"la-maml on mnist-rotations: task (\d)/3 done, RA (\d+\.\d\d) %, "
                                         r"\d+:\d\d:\d\d elapsed", line) for line in lines) if m]
    assert [int(m.group(1)) for m in progress] == [1, 2, 3], lines
    final_ra = float(re.search(r"retained accuracy \(RA\)\s+(\d+\.\d\d) %", result.stdout).group(1))
    assert float(progress[-1].group(2)) == final_ra           # the last line's RA is the run's
    quiet = lamaml("run", *TINY, "--quiet", data_dir=data_dir)
    assert quiet.returncode == 0 and quiet.stderr == ""
