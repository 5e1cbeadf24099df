"""Per-task pixel transforms as index maps.

A rotation with nearest-neighbour sampling and a pixel permutation are both "output pixel k takes
input pixel map[k]" (or black, for pixels rotated in from outside the image). Storing one index
map per task, instead of 70,000 transformed images per task, is what keeps 100 tasks in memory:
the images stay uint8 and are transformed when a task is used.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def rotation_index_map(angle_degrees: float, size: int = 28) -> torch.Tensor:
    """Index map of PIL's ``Image.rotate(angle)`` (nearest neighbour, no expand, fill 0).

    PIL rotates counter-clockwise about the image centre by inverse mapping: output pixel (x, y)
    reads input pixel floor(A @ (x + 0.5, y + 0.5) + c). For nearest-neighbour it does this in
    16.16 fixed point; repeating that integer arithmetic makes the map identical to PIL's,
    boundary pixels included (checked against Pillow on a thousand random angles).
    Out-of-image reads get index ``size * size``, which points at an always-zero pixel.
    """
    theta = -math.radians(angle_degrees % 360.0)
    a0, a1 = round(math.cos(theta), 15), round(math.sin(theta), 15)
    a3, a4 = round(-math.sin(theta), 15), round(math.cos(theta), 15)
    centre = size / 2.0
    a2 = a0 * -centre + a1 * -centre + centre
    a5 = a3 * -centre + a4 * -centre + centre
    fixed = lambda v: math.floor(v * 65536.0 + 0.5)  # noqa: E731
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    xs = fixed(a2 + a0 * 0.5 + a1 * 0.5) + y * fixed(a1) + x * fixed(a0)
    ys = fixed(a5 + a3 * 0.5 + a4 * 0.5) + y * fixed(a4) + x * fixed(a3)
    xin, yin = xs >> 16, ys >> 16          # arithmetic shift: floor, as in PIL's C code
    inside = (xin >= 0) & (xin < size) & (yin >= 0) & (yin < size)
    index = np.where(inside, yin * size + xin, size * size)
    return torch.from_numpy(index.reshape(-1))


def identity_index_map(size: int = 28) -> torch.Tensor:
    return torch.arange(size * size)


def with_zero_pixel(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) uint8 -> (H*W + 1, N) uint8, pixel-major, with a last all-zero pixel row.

    Pixel-major storage turns applying an index map into copying whole rows (index_select on
    dim 0), several times faster than gathering scattered bytes out of every image.
    """
    flat = images.reshape(len(images), -1)
    zero = torch.zeros(1, len(images), dtype=flat.dtype)
    return torch.cat([flat.T, zero]).contiguous()


def apply_index_map(pixels: torch.Tensor, index_map: torch.Tensor,
                    columns: torch.Tensor | None = None) -> torch.Tensor:
    """Transformed float images in [0, 1], shape (N, H*W), from pixel-major uint8 storage."""
    if columns is not None:
        pixels = pixels.index_select(1, columns)
    return pixels.index_select(0, index_map).to(torch.get_default_dtype()).div_(255.0).T
