"""Every benchmark of the La-MAML paper, and Split MNIST, in one registry, ``BENCHMARKS``: name ->
size, description, builder, the scenarios it runs under.

The MNIST ones are built here, lazily from the uint8 images: each task = the original images
under one index-map transform (a rotation or a permutation) plus a seeded choice of training
images, nothing per task materialised until it is used. CIFAR-100 and Tiny ImageNet are class
splits built by ``vision.py``. Split MNIST (not in the La-MAML paper; the standard benchmark of its
successors, e.g. van de Ven and Tolias 2019, Buzzega et al. 2020): 5 tasks of two digits each
(0-1, 2-3, 4-5, 6-7, 8-9), every training and test image of those digits.
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
    samples_per_task: int | None        # None: every training image of the task's classes
    description: str
    build: Callable[..., TaskStream]     # (data_dir, seed, samples_per_task, download) -> the stream
    # The protocols the paper ran it under, each with its own presets: MNIST single-pass only.
    settings: tuple[str, ...] = ("single",)
    # (data_dir, download) -> the files ``build`` reads, fetched where missing and allowed, none read
    files: Callable[[Path, bool], object] | None = None
    # The scenarios it runs under (data/stream.py, TaskStream), its default first: the MNIST ones of the
    # paper are domain-incremental (one head, the same 10 digits in every task).
    scenarios: tuple[str, ...] = ("domain-il",)


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
    heads: dict[int, torch.Tensor] = {}

    def head_pixels(n: int) -> torch.Tensor:
        """The first n test images, pixel-major and contiguous: cut once, shared by every task's head
        (gathering them out of all 10,000 columns at each call cost 10 ms a task, more than the forward
        pass that reads them; anytime evaluation of a 100-task stream makes 15,000 such calls)."""
        n = min(n, test_pixels.shape[1])
        if n not in heads:
            heads[n] = test_pixels[:, :n].contiguous()
        return heads[n]

    tasks = []
    for t, (index_map, subset) in enumerate(zip(index_maps, subsets)):
        train = lambda m=index_map, s=subset: (apply_index_map(train_pixels, m, s), mnist.train_labels[s])
        test = lambda m=index_map: (apply_index_map(test_pixels, m), mnist.test_labels)
        head = lambda n, m=index_map: (apply_index_map(head_pixels(n), m), mnist.test_labels[:n])
        tasks.append(Task(t, train=train, test=test, n_train=len(subset), info=infos[t], test_head=head))
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


SPLIT_MNIST_DIGITS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def split_mnist_stream(data_dir: Path, seed: int, samples_per_task: int | None, download: bool = True) -> TaskStream:
    """Task t: the digits 2t and 2t + 1, every training image of them (or a seeded choice of
    ``samples_per_task``) and every test image; labels stay the digits, so task t owns outputs
    2t and 2t + 1 of one 10-way head."""
    mnist = load_mnist(data_dir, allow_download=download)
    flat = lambda images, rows: images[rows].reshape(len(rows), -1).to(torch.get_default_dtype()).div_(255.0)  # noqa: E731
    generator = torch.Generator().manual_seed(seed)
    tasks = []
    for t, digits in enumerate(SPLIT_MNIST_DIGITS):
        train = torch.isin(mnist.train_labels, torch.tensor(digits)).nonzero().flatten()
        test = torch.isin(mnist.test_labels, torch.tensor(digits)).nonzero().flatten()
        if samples_per_task is not None:
            if not 1 <= samples_per_task <= len(train):
                raise UserError(f"samples_per_task={samples_per_task}: split-mnist's task {t} (digits "
                                f"{digits[0]} and {digits[1]}) has {len(train)} training images; use 1..{len(train)}")
            train = train[torch.randperm(len(train), generator=generator)[:samples_per_task]].sort().values
        tasks.append(Task(t, train=lambda r=train: (flat(mnist.train_images, r), mnist.train_labels[r]),
                          test=lambda r=test: (flat(mnist.test_images, r), mnist.test_labels[r]),
                          n_train=len(train), classes=list(digits),
                          info={"digits": list(digits), "n_test": len(test)}))
    return TaskStream("split-mnist", tasks, input_shape=(784,), n_outputs=10)


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
        BenchmarkInfo("split-mnist", 5, None, "MNIST, 5 tasks x 2 digits (0-1, ..., 8-9), every image of them",
                      split_mnist_stream, files=locate_mnist, scenarios=("class-il", "task-il")),
        BenchmarkInfo("cifar100", 20, 2250, "CIFAR-100, 20 tasks x 5 classes, task-aware heads", cifar100_stream,
                      ("single", "multi"), files=_cifar100_files, scenarios=("task-il", "class-il")),
        BenchmarkInfo("tinyimagenet", 40, 2250, "Tiny ImageNet-200, 40 tasks x 5 classes, task-aware heads",
                      tinyimagenet_stream, ("single", "multi"), files=_tinyimagenet_files,
                      scenarios=("task-il", "class-il")),
    ]
}


def benchmark_info(name: str) -> BenchmarkInfo:
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark '{name}'; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def check_scenario(name: str, scenario: str | None) -> str:
    """The scenario a run of benchmark ``name`` takes (None: its default); one line naming the allowed ones
    for any other."""
    info = benchmark_info(name)
    if scenario is None:
        return info.scenarios[0]
    if scenario not in info.scenarios:
        why = " (domain-incremental: every task has the same 10 digits over one head)" \
            if info.scenarios == ("domain-il",) else ""
        raise UserError(f"scenario={scenario}: {name} runs under {' or '.join(info.scenarios)} only{why}")
    return scenario


def build_benchmark(name: str, data_dir: str | Path | None, seed: int, samples_per_task: int | None = None,
                    download: bool = True, scenario: str | None = None) -> TaskStream:
    """The stream of benchmark ``name``; ``data_dir`` as ``--data-dir`` (a str, a Path, or None);
    ``scenario``: task-il, class-il or domain-il where the benchmark allows it (None: its default)."""
    info = benchmark_info(name)
    scenario = check_scenario(name, scenario)
    stream = info.build(resolve_data_dir(data_dir), seed, samples_per_task or info.samples_per_task, download)
    return stream if stream.scenario == scenario else stream.with_scenario(scenario)


def require_data(name: str, data_dir: Path, download: bool = True) -> None:
    """Check that the files benchmark ``name`` reads are there, fetching the missing ones where downloads
    are allowed (``download`` and not ``$LAMAML_NO_DOWNLOAD``), without reading them: what a driver does
    once before it hands runs to workers that never download. A one-line DataError when they are not."""
    info = benchmark_info(name)
    if info.files is not None:
        info.files(Path(data_dir), download)
