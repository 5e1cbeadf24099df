"""MNIST from the four official IDX files (gzipped or not), verified by checksum, as an ImageSet."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import download, downloads_allowed, verify
from .images import ImageSet

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

CLASSES = tuple(str(digit) for digit in range(10))
# name -> (sha256 of the .gz file, IDX magic number, number of items)
FILES = {
    "train-images-idx3-ubyte": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 2051, 60000),
    "train-labels-idx1-ubyte": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 2049, 60000),
    "t10k-images-idx3-ubyte": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 2051, 10000),
    "t10k-labels-idx1-ubyte": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 2049, 10000),
}


def _candidates(root: Path, name: str) -> list[Path]:
    folders = [root / "mnist", root, root / "MNIST" / "raw"]
    return [folder / (name + suffix) for folder in folders for suffix in (".gz", "")]


def _locate(root: Path, name: str, allow_download: bool) -> Path:
    for path in _candidates(root, name):
        if path.is_file():
            return path
    target = root / "mnist" / f"{name}.gz"
    if allow_download and downloads_allowed():
        sha256 = FILES[name][0]
        try:
            download([m + f"{name}.gz" for m in MIRRORS], target, sha256)
            return target
        except DataError as error:
            raise DataError(f"MNIST file {name}.gz is missing from {root / 'mnist'} and {error}") from None
    raise DataError(
        f"MNIST file {name}.gz is missing: looked in {root / 'mnist'} and {root} "
        f"(set --data-dir or $LAMAML_DATA to the folder that holds mnist/)"
    )


def locate_mnist(root: Path, allow_download: bool = True) -> list[Path]:
    """The four files ``load_mnist`` reads, downloading the missing ones when allowed; reads none of them."""
    return [_locate(Path(root), name, allow_download) for name in FILES]


def read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """Parse one IDX file; every structural fault becomes a DataError naming the file."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is corrupt: cannot decompress it ({error})") from None
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an MNIST IDX file: wrong magic number (expected {magic})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if dims[0] != count or len(raw) != header + int(np.prod(dims)):
        raise DataError(f"{path} is corrupt or truncated: header says {dims}, file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(root: Path, allow_download: bool = True) -> ImageSet:
    """The official train and test splits as uint8 (N, 1, 28, 28) images and int64 labels 0..9."""
    arrays = {}
    for name, (sha256, magic, count) in FILES.items():
        path = _locate(root, name, allow_download)
        if path.suffix == ".gz":
            verify(path, sha256)
        arrays[name] = read_idx(path, magic, count)
    if arrays["train-labels-idx1-ubyte"].max() > 9 or arrays["t10k-labels-idx1-ubyte"].max() > 9:
        raise DataError(f"MNIST labels in {root} are outside 0..9")
    images = lambda key: torch.from_numpy(arrays[key].copy()).unsqueeze(1)  # noqa: E731  (one channel)
    labels = lambda key: torch.from_numpy(arrays[key].astype(np.int64))  # noqa: E731
    return ImageSet(images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                    images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"), CLASSES)
