"""MNIST from the four official IDX files, gzipped or not, each verified by the sha256 of its content.

The check is on the IDX bytes themselves (decompressed when the file is gzipped; gzip is told by
its magic bytes, not the name), hashed as they stream in: the official ``.gz``, its unpacked
copy and a copy re-gzipped with another level or header all pass, and one changed byte fails.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import check_digest, digest_of, download, downloads_allowed, no_new_folders_on_failure
from .images import ImageSet

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

CLASSES = tuple(str(digit) for digit in range(10))
GZIP_MAGIC = b"\x1f\x8b"
BLOCK = 1 << 20
# name -> (sha256 of the official .gz, which a download is checked against; sha256 of its decompressed
# IDX content, which every file is checked against; IDX magic number; number of items)
FILES = {
    "train-images-idx3-ubyte": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 2051, 60000),
    "train-labels-idx1-ubyte": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 2049, 60000),
    "t10k-images-idx3-ubyte": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 2051, 10000),
    "t10k-labels-idx1-ubyte": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 2049, 10000),
}
# IDX magic -> bytes per item after the header (2051: 28 x 28 images; 2049: one label byte)
ITEM_BYTES = {2051: 28 * 28, 2049: 1}


def _folders(root: Path) -> list[Path]:
    # mnist/ is ours, root itself a bare folder of the files, MNIST/raw torchvision's layout
    return [root / "mnist", root, root / "MNIST" / "raw"]


def _candidates(root: Path, name: str) -> list[Path]:
    return [folder / (name + suffix) for folder in _folders(root) for suffix in (".gz", "")]


def _looked(root: Path, name: str) -> str:
    folders = [str(folder) for folder in _folders(root)]
    return f"looked in {', '.join(folders[:-1])} and {folders[-1]} (for {name}.gz and {name})"


def _locate(root: Path, name: str, allow_download: bool) -> Path:
    for path in _candidates(root, name):
        if path.is_file():
            return path
    target = root / "mnist" / f"{name}.gz"
    where = "(set --data-dir or $LAMAML_DATA to the folder that holds mnist/)"
    if not (allow_download and downloads_allowed()):
        raise DataError(f"MNIST file {name}.gz is missing: {_looked(root, name)} {where}")
    try:
        with no_new_folders_on_failure(target):
            download([m + f"{name}.gz" for m in MIRRORS], target, FILES[name][0])
    except DataError as error:
        raise DataError(f"MNIST file {name}.gz is missing ({_looked(root, name)}) and {error} {where}") from None
    return target


def locate_mnist(root: Path, allow_download: bool = True) -> list[Path]:
    """The four files ``load_mnist`` reads, downloading the missing ones when allowed; reads none of them."""
    return [_locate(Path(root), name, allow_download) for name in FILES]


def _read_hashed(path: Path, size: int) -> tuple[memoryview, str, bool]:
    """(the IDX bytes, their sha256, whether the file was gzipped), read and hashed in 1 MiB blocks
    into one buffer; at most ``size`` bytes are kept, so a file too long (or a gzip bomb) stops early."""
    buffer, digest, filled = bytearray(size), hashlib.sha256(), 0
    view = memoryview(buffer)
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        stream = gzip.GzipFile(fileobj=handle) if gzipped else handle
        while filled < size and (got := stream.readinto(view[filled:filled + BLOCK])):
            digest.update(view[filled:filled + got])
            filled += got
        too_long = filled == size and stream.read(1) != b""
    if too_long:
        raise DataError(f"{path} is corrupt: it holds more than the {size:,} bytes of the official file's content; "
                        f"delete it and download it again")
    return view[:filled], digest.hexdigest(), gzipped


def _unreadable(path: Path, name: str, error: Exception) -> DataError:
    """A file that cannot be read through; a gzip that breaks has no content checksum to show, so the
    file's own sha256 is compared with the official .gz's."""
    try:
        gzipped = path.open("rb").read(2) == GZIP_MAGIC
    except OSError:
        gzipped = False
    if not gzipped:
        return DataError(f"{path} cannot be read ({error})")
    return DataError(f"{path} is corrupt: its sha256 is {digest_of(path)}, the official {name}.gz's is "
                     f"{FILES[name][0]}, and it does not decompress ({error}); delete it and download it again")


def read_idx(path: Path, name: str) -> np.ndarray:
    """Parse IDX file ``name`` (a key of FILES) from ``path``, gzipped or not, and check its content's
    sha256; every fault is a DataError naming the file. The structure is checked before the checksum,
    so a truncated or foreign file says so."""
    _, sha256, magic, count = FILES[name]
    header = 4 + 4 * (3 if magic == 2051 else 1)
    try:
        raw, actual, gzipped = _read_hashed(path, header + count * ITEM_BYTES[magic])
    except (OSError, EOFError, zlib.error) as error:
        raise _unreadable(path, name, error) from None
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an MNIST IDX file: wrong magic number (expected {magic})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    if dims[0] != count or len(raw) != 4 + 4 * len(dims) + int(np.prod(dims)):
        raise DataError(f"{path} is corrupt or truncated: header says {dims}, its content has {len(raw)} bytes")
    check_digest(str(path), actual, sha256, subject="its decompressed content's" if gzipped else "its",
                 whose="the official content's", remedy="delete it and download it again")
    # the buffer is ours and writable: the arrays are views of it, no copy
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(root: Path, allow_download: bool = True) -> ImageSet:
    """The official train and test splits as uint8 (N, 1, 28, 28) images and int64 labels 0..9."""
    root = Path(root)
    arrays = {}
    for name in FILES:
        arrays[name] = read_idx(_locate(root, name, allow_download), name)
    if arrays["train-labels-idx1-ubyte"].max() > 9 or arrays["t10k-labels-idx1-ubyte"].max() > 9:
        raise DataError(f"MNIST labels in {root} are outside 0..9")
    images = lambda key: torch.from_numpy(arrays[key]).unsqueeze(1)  # noqa: E731  (one channel)
    labels = lambda key: torch.from_numpy(arrays[key].astype(np.int64))  # noqa: E731
    return ImageSet(images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                    images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"), CLASSES)
