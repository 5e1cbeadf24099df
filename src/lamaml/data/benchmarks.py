"""Every benchmark of the La-MAML paper in one registry, ``BENCHMARKS``: name -> size, description, builder.

The MNIST ones are built here, lazily from the uint8 images: each task = the original images
under one index-map transform (a rotation or a permutation) plus a seeded choice of training
images, nothing per task materialised until it is used. CIFAR-100 and Tiny ImageNet are class
splits built by ``vision.py``.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from .files import resolve_data_dir
from .mnist import load_mnist, locate_mnist
from .stream import Task, TaskStream
from .transforms import apply_index_map, rotation_index_map, with_zero_pixel
from .vision import cifar100_stream, tinyimagenet_stream


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str
    n_tasks: int
    samples_per_task: int
    description: str
    build: Callable[..., TaskStream]     # (data_dir, seed, samples_per_task, download) -> the stream
    # The protocols the paper ran it under, each with its own presets: MNIST single-pass only.
    settings: tuple[str, ...] = ("single",)
    # (data_dir, download) -> the files ``build`` reads, fetched where missing and allowed, none read
    files: Callable[[Path, bool], object] | None = None


def rotation_angles(n_tasks: int, seed: int, span: float = 180.0) -> list[float]:
    """Task t's angle is uniform in [t, t+1) * span / n_tasks: [9t, 9t + 9) degrees for 20 tasks.

    Drawn in order from ``random.Random(seed)``; for seed 0 this gives the angles the authors' code
    drew when we ran it, 7.5998, 15.8216, ... (tests/test_data.py pins all 20).
    """
    rng, width = random.Random(seed), span / n_tasks
    return [width * t + width * rng.random() for t in range(n_tasks)]


def permutations(n_tasks: int, seed: int, n_pixels: int = 784) -> list[torch.Tensor]:
    """Successive ``torch.randperm`` draws from a generator seeded with ``seed`` (as GEM's script)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_pixels, generator=generator) for _ in range(n_tasks)]


def training_subsets(n_tasks: int, n_train: int, samples_per_task: int, seed: int) -> list[torch.Tensor]:
    """The first ``samples_per_task`` of a fresh seeded permutation per task (as the authors' loader)."""
    if not 1 <= samples_per_task <= n_train:
        raise UserError(f"samples_per_task={samples_per_task}: must be in 1..{n_train}")
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_train, generator=generator)[:samples_per_task] for _ in range(n_tasks)]


def _mnist_stream(name: str, index_maps: list[torch.Tensor], infos: list[dict],
                  data_dir: Path, samples_per_task: int, seed: int, download: bool) -> TaskStream:
    mnist = load_mnist(data_dir, allow_download=download)
    train_pixels = with_zero_pixel(mnist.train_images)
    test_pixels = with_zero_pixel(mnist.test_images)
    subsets = training_subsets(len(index_maps), len(mnist.train_labels), samples_per_task, seed)
    tasks = []
    for t, (index_map, subset) in enumerate(zip(index_maps, subsets)):
        train = lambda m=index_map, s=subset: (apply_index_map(train_pixels, m, s), mnist.train_labels[s])
        test = lambda m=index_map: (apply_index_map(test_pixels, m), mnist.test_labels)
        tasks.append(Task(t, train=train, test=test, n_train=len(subset), info=infos[t]))
    return TaskStream(name, tasks, input_shape=(784,), n_outputs=10)


def _rotated(name: str, n_tasks: int):
    def build(data_dir: Path, seed: int, samples_per_task: int, download: bool = True) -> TaskStream:
        angles = rotation_angles(n_tasks, seed)
        infos = [{"angle_degrees": round(angle, 6)} for angle in angles]
        maps = [rotation_index_map(angle) for angle in angles]
        return _mnist_stream(name, maps, infos, data_dir, samples_per_task, seed, download)
    return build


def _permuted(name: str, n_tasks: int):
    def build(data_dir: Path, seed: int, samples_per_task: int, download: bool = True) -> TaskStream:
        perms = permutations(n_tasks, seed)
        infos = [{"permutation_seed": seed, "permutation_draw": t,
                  "permutation_sha1": hashlib.sha1(p.numpy().tobytes()).hexdigest()[:16]}
                 for t, p in enumerate(perms)]
        return _mnist_stream(name, perms, infos, data_dir, samples_per_task, seed, download)
    return build


def _cifar100_files(data_dir: Path, download: bool):
    from .cifar100 import locate_cifar100
    return locate_cifar100(data_dir, download)


def _tinyimagenet_files(data_dir: Path, download: bool):
    from .tinyimagenet_archive import locate      # no download: the official host is gone
    return locate(data_dir)


BENCHMARKS = {
    info.name: info for info in [
        BenchmarkInfo("mnist-rotations", 20, 1000,
                      "MNIST, task t rotated by an angle in [9t, 9t+9) degrees", _rotated("mnist-rotations", 20),
                      files=locate_mnist),
        BenchmarkInfo("mnist-permutations", 20, 1000,
                      "MNIST, one fixed pixel permutation per task", _permuted("mnist-permutations", 20),
                      files=locate_mnist),
        BenchmarkInfo("mnist-many-permutations", 100, 200,
                      "MNIST, 100 permutation tasks of 200 samples", _permuted("mnist-many-permutations", 100),
                      files=locate_mnist),
        BenchmarkInfo("cifar100", 20, 2250, "CIFAR-100, 20 tasks x 5 classes, task-aware heads", cifar100_stream,
                      ("single", "multi"), files=_cifar100_files),
        BenchmarkInfo("tinyimagenet", 40, 2250, "Tiny ImageNet-200, 40 tasks x 5 classes, task-aware heads",
                      tinyimagenet_stream, ("single", "multi"), files=_tinyimagenet_files),
    ]
}


def benchmark_info(name: str) -> BenchmarkInfo:
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark '{name}'; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def build_benchmark(name: str, data_dir: str | Path | None, seed: int, samples_per_task: int | None = None,
                    download: bool = True) -> TaskStream:
    """The stream of benchmark ``name``; ``data_dir`` as ``--data-dir`` (a str, a Path, or None)."""
    info = benchmark_info(name)
    return info.build(resolve_data_dir(data_dir), seed, samples_per_task or info.samples_per_task, download)


def require_data(name: str, data_dir: Path, download: bool = True) -> None:
    """Check that the files benchmark ``name`` reads are there, fetching the missing ones where downloads
    are allowed (``download`` and not ``$LAMAML_NO_DOWNLOAD``), without reading them: what a driver does
    once before it hands runs to workers that never download. A one-line DataError when they are not."""
    info = benchmark_info(name)
    if info.files is not None:
        info.files(Path(data_dir), download)
