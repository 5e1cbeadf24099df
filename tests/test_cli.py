"""The command line as a user meets it: clear one-line errors, deterministic results."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SMOKE = ["--tasks", "2", "--set", "samples_per_task=60", "--quiet"]


def lamaml(*args, data_dir=None, cwd=None):
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1")
    if data_dir:
        env["LAMAML_DATA"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "lamaml.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd or REPO, timeout=300)


def assert_user_facing_error(result, out_dir, message, status=2):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lamaml: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (out_dir / "metrics.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "mnist-rotatoins"], "unknown benchmark 'mnist-rotatoins'; choose from mnist-rotations"),
    (["--method", "la-mamll"], "unknown method 'la-mamll'; choose from a-gem, c-maml, der, der++, er, er-ace, ewc, gem, icarl, iid, la-er, la-maml, mer, meta-bgd, online, sync-la-maml, vr-mcl"),
    (["--set", "glances=0"], "--set glances=0: glances must be greater than or equal to 1"),
    (["--set", "alpha_init=abc"], "--set alpha_init=abc: alpha_init must be a valid number"),
    (["--set", "alpha_init"], "--set alpha_init: expected key=value"),
    (["--set", "colour=red"], "--set colour: unknown setting for la-maml; allowed:"),
    (["--set", "inner_steps=11"], "inner_steps=11 exceeds batch_size=10"),
    (["--tasks", "21"], "tasks=21: mnist-rotations has 20 tasks; use 1..20"),
    (["--seed", "-1"], "seed must be greater than or equal to 0"),
    (["--set", "device=tpu"], "--set device=tpu: device must be 'cpu', 'cuda' or 'auto'"),
])
def test_bad_settings_get_one_line_naming_the_value(args, message, data_dir, tmp_path):
    assert_user_facing_error(lamaml("run", "--out", tmp_path, *args, data_dir=data_dir), tmp_path, message)


def test_an_output_path_that_is_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = lamaml("run", "--out", tmp_path / "taken", "--data-dir", tmp_path / "absent")
    assert_user_facing_error(result, tmp_path, f"--out {tmp_path / 'taken'}: cannot create that folder")


def test_a_missing_data_folder_is_named(tmp_path):
    result = lamaml("run", "--out", tmp_path, "--data-dir", tmp_path / "absent", "--no-download")
    assert_user_facing_error(result, tmp_path, f"train-images-idx3-ubyte.gz is missing: looked in {tmp_path / 'absent'}")


def test_a_corrupted_idx_file_is_named(data_dir, tmp_path):
    shutil.copytree(data_dir / "mnist", tmp_path / "data" / "mnist")
    target = tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0x55
    target.write_bytes(bytes(raw))
    result = lamaml("run", "--out", tmp_path, *SMOKE, data_dir=tmp_path / "data")
    assert_user_facing_error(result, tmp_path, f"{target} is corrupt: its sha256")


def test_a_diverging_loss_stops_the_run_with_status_1(data_dir, tmp_path):
    result = lamaml("run", "--out", tmp_path, *SMOKE, "--set", "alpha_init=1e30", data_dir=data_dir)
    assert_user_facing_error(result, tmp_path, "the loss became nan at task 0, epoch 0, batch 0", status=1)


def test_the_same_command_twice_gives_identical_numbers(data_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        result = lamaml("run", "--out", tmp_path / name, *SMOKE, "--set", "glances=2", data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        assert "retained accuracy (RA)" in result.stdout
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    a, b = runs
    for key in ("ra", "bti", "bwt", "fwt", "learning_accuracy", "acc_matrix", "baseline_accuracy", "task_losses",
                "tasks", "config"):
        assert a[key] == b[key], key
    assert a["updates"] == 2 * 6 * 2 and len(a["acc_matrix"]) == 2
    assert a["tasks"][0]["angle_degrees"] == pytest.approx(7.5998, abs=1e-4)
    assert a["config"]["params"]["opt_lr"] == 0.3 and a["config"]["glances"] == 2
    for key in ("train_time_s", "eval_time_s", "wall_time_s", "peak_rss_mb", "seed", "lamaml_version"):
        assert key in a


def test_list_shows_benchmarks_methods_and_their_paper_defaults():
    result = lamaml("list")
    assert result.returncode == 0
    assert "mnist-many-permutations" in result.stdout and "sync-la-maml" in result.stdout and "vr-mcl" in result.stdout
    assert "glances=10 memories=500 replay_batch_size=10 alpha_init=0.1 opt_lr=0.1" in result.stdout


def test_evaluating_only_seen_tasks_leaves_the_metrics_unchanged(data_dir, tmp_path):
    runs = {}
    for mode in ("all", "seen", "metrics"):
        result = lamaml("run", "--out", tmp_path / mode, "--tasks", "4", "--set", "samples_per_task=40",
                        "--set", f"evaluate={mode}", "--quiet", data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        runs[mode] = json.loads((tmp_path / mode / "metrics.json").read_text())
    for key in ("ra", "bti", "bwt", "fwt", "learning_accuracy"):
        assert runs["all"][key] == runs["seen"][key] == runs["metrics"][key]
    assert runs["seen"]["acc_matrix"][0][2] is None and runs["all"]["acc_matrix"][0][2] is not None
    assert runs["metrics"]["acc_matrix"][2][0] is None and runs["seen"]["acc_matrix"][2][0] is not None
    assert None not in runs["metrics"]["acc_matrix"][-1]
