import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LAMAML_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found under {DATA_DIR} (set LAMAML_DATA)")
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    from lamaml.data.mnist import load_mnist
    return load_mnist(data_dir, allow_download=False)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never reach a dataset host."""
    monkeypatch.setenv("LAMAML_NO_DOWNLOAD", "1")


@pytest.fixture
def double():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def threads():
    """Set the process's thread count for one test; restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def run_lamaml(*args, data_dir, fault=None):
    """``python -m lamaml.cli ARGS`` in a child with the test data and no downloads; ``fault``: LAMAML_FAULT."""
    env = dict(os.environ, LAMAML_NO_DOWNLOAD="1", LAMAML_DATA=str(data_dir))
    env.pop("LAMAML_FAULT", None)
    if fault:
        env["LAMAML_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "lamaml.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
