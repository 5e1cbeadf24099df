"""CIFAR-100 from the official python-format release, verified and checked before it is trusted.

Sources, looked for under ``data_dir`` in this order (the first one present is used):

1. ``cifar-100-python/``: the official archive unpacked, holding the files ``train``, ``test`` and
   ``meta`` (used only when all three are there);
2. ``cifar-100-python.tar.gz``: the official archive; its three members are read straight out of
   the tar stream, nothing is extracted;
3. neither: the archive is downloaded from the Toronto site into ``data_dir`` (unless downloads
   are off: ``allow_download=False`` or ``$LAMAML_NO_DOWNLOAD=1``), then read as in 2.

Format: ``train`` and ``test`` are pickles (protocol 2, written by Python 2 numpy, so they are read
with ``encoding="bytes"`` and their keys are bytes) of a dict with ``data`` (uint8, N x 3072: one
image per row, 1024 red values, then green, then blue, each plane row-major 32 x 32, i.e. CHW),
``fine_labels`` (N ints in 0..99), ``coarse_labels``, ``filenames`` and ``batch_label``; train has
50,000 rows and test 10,000. ``meta`` holds ``fine_label_names`` (100 names) and
``coarse_label_names``. We keep the fine labels: ``classes[k]`` names fine label ``k``.

Checks: each of the three files' md5 against the official release's, whether it comes from the
folder or out of the archive, when ``verify_checksums`` (the default): the check is on the content,
so an archive packed again (another gzip level, tar format or order) passes and one changed byte
in a file fails. A download is checked against the official archive's md5 as it arrives. Then,
always, the content itself: the keys, the dtype and shape of ``data``, and one label in 0..99 per
row. Any fault is a one-line ``DataError`` naming the file and what to do.

Security: a pickle can name any callable to run while it loads, so these files are read with
``load_restricted_pickle``, which admits only numpy arrays and plain containers and refuses
anything else before it is called. Archive members with absolute names or ``..`` are refused.
"""
from __future__ import annotations

import hashlib
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import DataError
from .files import check_digest, download, downloads_allowed, no_new_folders_on_failure
from .images import ImageSet
from .safety import load_restricted_pickle

ROOT = "cifar-100-python"
ARCHIVE = f"{ROOT}.tar.gz"
URL = f"https://www.cs.toronto.edu/~kriz/{ARCHIVE}"
PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
MEMBERS = ("train", "test", "meta")
# md5 of the official release, the only digests its authors publish (module level so that tests
# can point it at the small files they make)
MD5 = {
    ARCHIVE: "eb9058c3a382ffc7106e4002c42a8d85",
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
CLASSES, PIXELS = 100, 3 * 32 * 32


def load_cifar100(data_dir: Path, allow_download: bool = True, verify_checksums: bool = True) -> ImageSet:
    """The official train and test splits as uint8 (N, 3, 32, 32) images and int64 fine labels."""
    blobs = _read_sources(Path(data_dir), allow_download, verify_checksums)
    classes = _class_names(*blobs.pop("meta"))
    train_images, train_labels = _split(*blobs.pop("train"))
    test_images, test_labels = _split(*blobs.pop("test"))
    return ImageSet(train_images, train_labels, test_images, test_labels, classes)


# ----------------------------------------------------------------------------------------- sources

def _read_sources(data_dir: Path, allow_download: bool, verify_checksums: bool) -> dict[str, tuple[bytes, str]]:
    """member name -> (its bytes, how messages name it), from the first source present."""
    source, downloaded = _locate(data_dir, allow_download)
    if source.is_dir():
        return _read_folder(source, verify_checksums)
    return _read_archive(source, verify_checksums and not downloaded)   # a download has just checked its md5


def locate_cifar100(data_dir: Path, allow_download: bool = True) -> Path:
    """The source ``load_cifar100`` would read (the folder or the archive), downloading the archive when it
    is missing and downloads are allowed; read nothing. A one-line DataError when there is none."""
    return _locate(Path(data_dir), allow_download)[0]


def _locate(data_dir: Path, allow_download: bool) -> tuple[Path, bool]:
    folder, archive = data_dir / ROOT, data_dir / ARCHIVE
    lacking = [name for name in MEMBERS if not (folder / name).is_file()]
    if not lacking:
        return folder, False
    if archive.is_file():
        return archive, False
    partial = f" (it lacks {', '.join(lacking)})" if folder.is_dir() else ""
    looked = f"looked for {folder}/{partial} and {archive}"
    by_hand = f"download {ARCHIVE} from {PAGE} into {data_dir} (or set --data-dir or $LAMAML_DATA)"
    if not (allow_download and downloads_allowed()):
        raise DataError(f"CIFAR-100 not found: {looked}; {by_hand}")
    try:
        with no_new_folders_on_failure(archive):
            download([URL], archive, MD5[ARCHIVE], "md5")
    except DataError as error:
        raise DataError(f"CIFAR-100 not found ({looked}) and the download failed "
                        f"({' '.join(str(error).split())}); {by_hand}") from None
    return archive, True


def _read_folder(folder: Path, check: bool) -> dict[str, tuple[bytes, str]]:
    blobs = {}
    for name in MEMBERS:
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataError(f"{path} cannot be read ({error.strerror or error})") from None
        if check:
            _check_md5(data, str(path), name, "replace it with the file from an intact official archive")
        blobs[name] = (data, str(path))
    return blobs


def _check_md5(data: bytes, source: str, name: str, remedy: str) -> None:
    check_digest(source, hashlib.md5(data, usedforsecurity=False).hexdigest(), MD5[name], "md5", remedy=remedy)


def _read_archive(archive: Path, check: bool) -> dict[str, tuple[bytes, str]]:
    wanted = {f"{ROOT}/{name}": name for name in MEMBERS}
    blobs = {}
    try:
        # stream mode: each member is read as the stream passes it, so the gzip is decompressed once
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                name = _checked_name(archive, member)
                if name not in wanted:
                    continue
                if not member.isfile() or wanted[name] in blobs:
                    raise DataError(f"{archive}:{name} is a link, a device or a duplicate, which the official "
                                    f"archive has none of; delete it and download it again")
                blobs[wanted[name]] = (tar.extractfile(member).read(), f"{archive}:{name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{archive} is corrupt: cannot read it as a tar.gz ({error}); "
                        f"delete it and download it again") from None
    lacking = [name for name in MEMBERS if name not in blobs]
    if lacking:
        raise DataError(f"{archive} lacks {', '.join(f'{ROOT}/{n}' for n in lacking)}: it is not the official "
                        f"CIFAR-100 python archive; delete it and download it again")
    if check:   # the members, not the archive: a copy packed again holds the same files
        for name, (data, source) in blobs.items():
            _check_md5(data, source, name, "delete the archive and download it again")
    return blobs


def _checked_name(archive: Path, member: tarfile.TarInfo) -> str:
    """The member's name without a leading './'; absolute names and '..' are refused outright."""
    name = member.name.replace("\\", "/")
    if PurePosixPath(name).is_absolute() or ".." in name.split("/"):
        raise DataError(f"{archive} holds a member named {member.name!r} (absolute or with '..'), which the "
                        f"official archive never does; refusing to read it")
    return name[2:] if name.startswith("./") else name


# ----------------------------------------------------------------------------------------- content

def _unpickle_dict(data: bytes, source: str) -> dict:
    """The file's dict, with str keys (Python 2 wrote them as bytes; a Python 3 copy has str)."""
    record = load_restricted_pickle(data, source, encoding="bytes")
    if not isinstance(record, dict):
        raise DataError(f"{source} is not a CIFAR-100 file: it holds a {type(record).__name__}, expected a dict")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in record.items()}


def _require(record: dict, source: str, *keys: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise DataError(f"{source} is not a CIFAR-100 file: it has no {', '.join(missing)} "
                        f"(keys: {', '.join(map(str, record)) or 'none'})")


def _split(data: bytes, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    record = _unpickle_dict(data, source)
    _require(record, source, "data", "fine_labels")
    images = record["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        found = f"dtype {images.dtype}" if isinstance(images, np.ndarray) else f"a {type(images).__name__}"
        raise DataError(f"{source} is not a CIFAR-100 file: its data is {found}, expected a uint8 array")
    if images.ndim != 2 or images.shape[1] != PIXELS or len(images) == 0:
        raise DataError(f"{source} is not a CIFAR-100 file: its data has shape {images.shape}, "
                        f"expected (N, {PIXELS}) with N > 0")
    labels = _labels(record["fine_labels"], len(images), source)
    if not images.flags.writeable:   # torch.from_numpy wants a writable buffer
        images = images.copy()
    # rows are already CHW (R plane, G plane, B plane, each row-major): a reshape, no transpose
    return torch.from_numpy(images).reshape(-1, 3, 32, 32), torch.from_numpy(labels)


def _labels(values, count: int, source: str) -> np.ndarray:
    try:
        labels = np.asarray(values)
    except (ValueError, TypeError):
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{source} is not a CIFAR-100 file: its fine_labels are not a flat list of integers")
    if len(labels) != count:
        raise DataError(f"{source} is not a CIFAR-100 file: it has {len(labels)} fine_labels for {count} images")
    if labels.min() < 0 or labels.max() >= CLASSES:
        raise DataError(f"{source} is corrupt: its fine_labels run from {labels.min()} to {labels.max()}, "
                        f"expected 0..{CLASSES - 1}")
    return labels.astype(np.int64)


def _class_names(data: bytes, source: str) -> tuple[str, ...]:
    record = _unpickle_dict(data, source)
    _require(record, source, "fine_label_names")
    names = record["fine_label_names"]
    if (not isinstance(names, (list, tuple)) or len(names) != CLASSES
            or not all(isinstance(name, (bytes, str)) for name in names)):
        raise DataError(f"{source} is not a CIFAR-100 meta file: its fine_label_names are not {CLASSES} names")
    classes = tuple(name.decode("utf-8", errors="replace") if isinstance(name, bytes) else name for name in names)
    if len(set(classes)) != CLASSES:
        raise DataError(f"{source} is corrupt: its fine_label_names repeat a name")
    return classes
