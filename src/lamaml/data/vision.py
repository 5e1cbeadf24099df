"""Split CIFAR-100 (20 tasks x 5 classes) and Split Tiny ImageNet-200 (40 x 5), as the paper ran them.

Reference section 4.2-4.3: a seeded random class order; labels renumbered to their position in
it, so task t owns outputs [5t, 5t+5) of one shared head (task-aware evaluation); 10% of each
class's training images held out for validation (the accuracy matrix, RA and BTI come from it);
the official test set (Tiny ImageNet: its labelled val/ folder) evaluated too. Images stay uint8
in memory; each training batch is augmented when the stream hands it out (random crop with
padding 4, horizontal flip, and for CIFAR a brightness jitter of 63/255), all as batched tensor
operations with the run's stream generator, so a seed gives the same augmentations every time.

Differences from the authors' loaders, none of which changes the protocol: the class order uses
``random.Random(seed).shuffle`` (theirs: ``random.seed(seed); random.shuffle``, the same draws),
the validation split uses a seeded torch permutation per class (theirs: numpy or ``random``
state left by earlier code), and augmentation is drawn per batch from one generator instead of
per sample in DataLoader workers.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F

from .images import ImageSet
from .stream import Task, TaskStream

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VALIDATION_FRACTION = 0.1


def class_order(n_classes: int, seed: int) -> list[int]:
    order = list(range(n_classes))
    random.Random(seed).shuffle(order)
    return order


def split_per_class(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices: the first ``int(fraction * n_c)`` of a seeded permutation of each class."""
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in range(int(labels.max()) + 1):
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = int(fraction * len(members))
        val.append(members[:cut])
        train.append(members[cut:])
    return torch.cat(train), torch.cat(val)


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (or float in [0, 1]) images -> normalized floats of the default dtype."""
    x = images.to(torch.get_default_dtype())
    if images.dtype == torch.uint8:
        x = x / 255.0
    mean = torch.tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    std = torch.tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4,
            brightness: float | None = None) -> torch.Tensor:
    """Random crop (zero padding), horizontal flip and brightness jitter of a uint8 batch; floats in [0, 1]."""
    B, C, H, W = images.shape
    draws = lambda high: torch.randint(0, high, (B,), generator=generator).to(images.device)  # noqa: E731
    dy, dx, flip = draws(2 * padding + 1), draws(2 * padding + 1), draws(2).bool()
    x = F.pad(images.to(torch.get_default_dtype()) / 255.0, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W, device=x.device))
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    x = x[torch.arange(B, device=x.device)[:, None, None, None], torch.arange(C, device=x.device)[None, :, None, None],
          rows, cols]
    if brightness:
        factor = torch.empty(B, dtype=x.dtype).uniform_(max(0.0, 1 - brightness), 1 + brightness,
                                                        generator=generator).to(x.device)
        x = (x * factor[:, None, None, None]).clamp_(0.0, 1.0)
    return x


def split_image_stream(name: str, data: ImageSet, n_tasks: int, seed: int, samples_per_task: int | None,
                       mean, std, brightness: float | None) -> TaskStream:
    n_classes = len(data.classes)
    per_task = n_classes // n_tasks
    order = class_order(n_classes, seed)
    position = torch.empty(n_classes, dtype=torch.long)
    position[torch.tensor(order)] = torch.arange(n_classes)
    train_labels, test_labels = position[data.train_labels], position[data.test_labels]
    train_index, val_index = split_per_class(train_labels, VALIDATION_FRACTION, seed)
    subset = torch.Generator().manual_seed(seed + 1)
    # The validation rows come class by class (split_per_class): shuffled within each task, so that its
    # first N (anytime_samples, the analyses' samples) hold every class, not the first one or two. Their
    # own generator: the training subsets draw exactly as before.
    val_order = torch.Generator().manual_seed(seed + 2)
    tasks = []
    for t in range(n_tasks):
        low, high = t * per_task, (t + 1) * per_task
        mine = lambda index, labels: index[(labels[index] >= low) & (labels[index] < high)]  # noqa: E731
        train = mine(train_index, train_labels)
        train = train[torch.randperm(len(train), generator=subset)][:samples_per_task or len(train)]
        val, test = mine(val_index, train_labels), mine(torch.arange(len(test_labels)), test_labels)
        val = val[torch.randperm(len(val), generator=val_order)]
        tasks.append(Task(
            t, n_train=len(train), classes=list(range(low, high)),
            train=lambda i=train: (data.train_images[i], train_labels[i]),
            val=lambda i=val: (normalize(data.train_images[i], mean, std), train_labels[i]),
            test=lambda i=test: (normalize(data.test_images[i], mean, std), test_labels[i]),
            prepare=lambda x, g: normalize(augment(x, g, brightness=brightness), mean, std),
            info={"classes": [data.classes[c] for c in order[low:high]], "n_val": len(val), "n_test": len(test)}))
    return TaskStream(name, tasks, input_shape=tuple(data.train_images.shape[1:]), n_outputs=n_classes)


def cifar100_stream(data_dir: Path, seed: int, samples_per_task: int | None, download: bool = True) -> TaskStream:
    from .cifar100 import load_cifar100
    return split_image_stream("cifar100", load_cifar100(data_dir, allow_download=download), 20, seed,
                              samples_per_task, CIFAR_MEAN, CIFAR_STD, brightness=63 / 255)


def tinyimagenet_stream(data_dir: Path, seed: int, samples_per_task: int | None,
                        download: bool = True) -> TaskStream:
    from .tinyimagenet import load_tinyimagenet
    return split_image_stream("tinyimagenet", load_tinyimagenet(data_dir), 40, seed, samples_per_task,
                              IMAGENET_MEAN, IMAGENET_STD, brightness=None)

