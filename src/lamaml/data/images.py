"""The in-memory form of an image classification data set, whatever file it was read from."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, H, W) and int64 labels, for the official train and test splits.

    ``classes`` names each label (MNIST: the digits "0".."9"; CIFAR-100: its fine label names;
    Tiny ImageNet: the wnids sorted, as ImageFolder sorts class folders); label ``k`` is
    ``classes[k]``. For Tiny ImageNet, ``test`` is the official labelled ``val/`` folder (the
    official test images have no labels).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self):
        for images, labels in ((self.train_images, self.train_labels), (self.test_images, self.test_labels)):
            assert images.dtype == torch.uint8 and images.ndim == 4, (images.dtype, images.shape)
            assert labels.dtype == torch.int64 and labels.shape == (len(images),), (labels.dtype, labels.shape)
