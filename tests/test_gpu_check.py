"""bench/gpu_check.py, the prepared CUDA check, run here against the CPU (``--device cpu``): it must run as
written the day a GPU is lent, and its two sides must start equal, so any difference it reports there is
the device's."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
gpu_check = pytest.importorskip("gpu_check")


def test_the_script_runs_as_written_and_writes_its_report(tmp_path):
    out = tmp_path / "gpu-check.md"
    result = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--methods", "er",
                             "--benchmarks", "cifar100", "--skip-compile", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert "| cifar100, er | 0.0e+00 | yes |" in report
    assert "| cifar100 | er | single |" in report and "wrote" in result.stdout


@pytest.mark.parametrize("method", gpu_check.MNIST_FAST)
def test_each_mnist_fast_path_takes_two_tasks_the_same_on_two_devices(method):
    """CPU against CPU: both sides from the same weights, draws and batches, so the gap is 0 (on a GPU it
    is the device's); the learner does move (else a gap of 0 would say nothing)."""
    assert gpu_check.equality(gpu_check.MNIST, method, ("cpu", "cpu")) == 0.0


def test_two_batched_seeds_take_the_same_steps_on_two_devices():
    assert gpu_check.batched_equality(("cpu", "cpu")) == 0.0


def test_the_checked_learners_take_their_fast_paths_and_move(double):
    import torch
    from lamaml.config import resolve_config
    from lamaml.methods.lookahead.stacked import FactoredMLP
    config = resolve_config(gpu_check.MNIST, "la-maml", {})
    learner = gpu_check._learner(config, torch.device("cpu"), gpu_check.MNIST)
    start = [t.clone() for t in gpu_check._state(learner)]
    gpu_check._train(learner, config, gpu_check._stream(config, gpu_check.MNIST, 2, 2), "cpu")
    assert isinstance(learner.backend, FactoredMLP)
    assert max(float((a - b).abs().max()) for a, b in zip(start, gpu_check._state(learner))) > 1e-4
