"""`lamaml run` as a batch job meets it: progress in a log file, how to resume an interrupted run, a
finished run left alone, a dry run that checks what the run would check."""
import importlib
import json
import os
import re
import subprocess
import sys

import pytest
import torch

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
    progress = [m for m in (re.fullmatch(r"la-maml on mnist-rotations: task (\d)/3 done, (RA|task \d accuracy) "
                                         r"(\d+\.\d\d) %, \d+:\d\d:\d\d elapsed", line) for line in lines) if m]
    assert [int(m.group(1)) for m in progress] == [1, 2, 3], lines
    # evaluate=metrics measures the RA so far after the first task and the last, not task 2's (row 2 lacks task 1)
    assert [m.group(2) for m in progress] == ["RA", "task 2 accuracy", "RA"], lines
    final_ra = float(re.search(r"retained accuracy \(RA\)\s+(\d+\.\d\d) %", result.stdout).group(1))
    assert float(progress[-1].group(3)) == final_ra           # the last line's RA is the run's
    quiet = lamaml("run", *TINY, "--quiet", data_dir=data_dir)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_an_interrupted_run_prints_the_command_that_resumes_it(data_dir, tmp_path):
    import shlex
    import signal
    import time
    out = tmp_path / "run dir"                  # a space: the printed command must quote it
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    env.pop("LAMAML_FAULT", None)
    with open(tmp_path / "err", "w") as err:
        # 20 short tasks: after the first task's checkpoint, 19 remain (seconds), so the interrupt lands
        # mid-run even when a loaded machine is slow to schedule this test's polling.
        process = subprocess.Popen([sys.executable, "-m", "lamaml", "run", "--tasks", "20", "--set",
                                    "samples_per_task=100", "--quiet", "--out", str(out), "--checkpoint-every", "1"],
                                   stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO,
                                   # Ctrl-C's default even where this test process ignores SIGINT (an
                                   # ignored signal stays ignored across exec; Ray, for one, ignores it)
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)      # Ctrl-C, after the first task's checkpoint
        assert process.wait(timeout=120) == 130
    lines = (tmp_path / "err").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lamaml: interrupted; continue from its last checkpoint with: ")
    command = shlex.split(lines[0].split("with: ", 1)[1])
    assert command == ["lamaml", "run", "--resume", str(out)]
    assert json.loads((out / "status.json").read_text())["status"] == "failed"
    resumed = lamaml(*command[1:], "--quiet", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True


def test_a_run_that_fails_after_a_checkpoint_names_the_resume_command(tmp_path, capsys, monkeypatch):
    from lamaml import cli
    from lamaml.errors import RunFailed
    import lamaml.experiments.runs as runs

    def failing(config, *, out, **_):
        (out / "checkpoint.pt").write_bytes(b"a checkpoint")
        raise RunFailed("the loss became nan at task 1, epoch 0, batch 3")
    monkeypatch.setattr(runs, "run_recorded", failing)
    assert cli.main(["run", "--out", str(tmp_path), "--data-dir", "/data", "--checkpoint-every", "1",
                     "--quiet"]) == 1
    assert capsys.readouterr().err == (
        "lamaml: the loss became nan at task 1, epoch 0, batch 3; its last checkpoint, from before the failure, "
        f"is kept: lamaml run --resume {tmp_path} --data-dir /data\n")


def test_resuming_a_finished_run_is_refused_and_leaves_its_metrics(data_dir, tmp_path):
    first = lamaml("run", *TINY, "--quiet", "--out", tmp_path, "--checkpoint-every", "1", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    records = {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns)
               for name in ("metrics.json", "status.json", "checkpoint.pt")}
    again = lamaml("run", "--resume", tmp_path, data_dir=data_dir)
    assert again.returncode == 2 and again.stderr == (
        f"lamaml: --resume {tmp_path}: the run in {tmp_path} is already finished; "
        f"its metrics are in {tmp_path / 'metrics.json'}\n")
    assert {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns)
            for name in records} == records         # not even rewritten with the same bytes


def test_a_dry_run_refuses_what_the_run_would_refuse(data_dir, monkeypatch, capsys):
    import torch
    if torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from lamaml import cli
    for args, message in [
        (["--set", "device=cuda"], "device=cuda: no CUDA GPU is visible to PyTorch"),
        (["--method", "iid", "--analyses", "alignment"], "iid trains on all tasks at once; Probes need a stream"),
        (["--method", "iid", "--set", "eval_every=2"], "iid trains on all tasks at once; AnytimeEvaluation need a"),
    ]:
        assert cli.main(["run", "--dry-run", "--data-dir", str(data_dir), *TINY, *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"lamaml: {message}") and err.count("\n") == 1, err
    good = lamaml("run", "--dry-run", *TINY, "--set", "device=auto", data_dir=data_dir)
    assert good.returncode == 0 and json.loads(good.stdout)["tasks"] == 3
    assert json.loads(good.stdout)["device"] in ("cpu", "cuda")


@pytest.fixture
def cuda_flags(monkeypatch):
    """PyTorch's process-wide float32 and determinism flags, restored after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield lambda: (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision,
                   torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_on_cuda_float32_is_full_float32_unless_tf32_is_asked_and_kernels_deterministic_on_request(cuda_flags):
    """PyTorch computes CUDA convolutions in TF32 unless told otherwise: a run does not, by default."""
    from lamaml.engine import cuda_numerics
    assert cuda_flags()[0] == "tf32"                        # PyTorch's default, which the run changes
    cuda_numerics(torch.device("cuda"))                     # setting the flags needs no GPU
    assert cuda_flags()[:3] == ("ieee", "ieee", False) and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    cuda_numerics(torch.device("cuda"), "tf32", deterministic=True)
    assert cuda_flags() == ("tf32", "tf32", True, True) and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # (warn_only: an operation without a deterministic kernel warns rather than ends a run of hours)
    cuda_numerics(torch.device("cuda", 1), "float32", deterministic=False)   # a later run of the process
    assert cuda_flags()[:3] == ("ieee", "ieee", False)
    cuda_numerics(torch.device("cpu"), "tf32", deterministic=True)           # the CPU's flags are left alone
    assert cuda_flags()[:3] == ("ieee", "ieee", False)


def test_a_run_hands_its_numerics_to_the_device_and_rejects_an_unknown_precision(data_dir, monkeypatch, capsys):
    from lamaml import cli
    from lamaml.config import resolve_config
    run_module = importlib.import_module("lamaml.engine.run")     # the module, not engine's run function
    seen = []
    monkeypatch.setattr(run_module, "cuda_numerics", lambda *args: seen.append(args))
    config = resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 20, "cuda_precision": "tf32",
                                                           "deterministic": True}, tasks=1)
    run_module.prepare(config, data_dir, download=False)
    assert seen == [(torch.device("cpu"), "tf32", True)]
    assert cli.main(["run", "--dry-run", "--data-dir", str(data_dir), *TINY, "--set", "cuda_precision=fp16"]) == 2
    err = capsys.readouterr().err
    assert "cuda_precision" in err and "'float32' or 'tf32'" in err and err.count("\n") == 1, err
