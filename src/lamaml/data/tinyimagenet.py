"""Tiny ImageNet-200 from its unpacked folder or a zip, decoded once and then cached.

Sources, looked for under ``data_dir`` in this order (the first one present is used):

1. ``tiny-imagenet-200/``: the official zip unpacked (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
   ``val/images/*.JPEG``, ``val/val_annotations.txt``);
2. ``tiny-imagenet-200.zip``: the official archive (md5 checked);
3. ``tiny-imagenet-200-trainval.zip``: the shared copy without ``test/`` (sha256 checked).

Zip members are read by random access straight from the archive; nothing is extracted, so a
hostile member name cannot write anywhere. There is no download: the official host is gone.

Decoding the 110,000 JPEGs costs ~18 s of CPU (25-30 s wall on 2 shared cores), so the first
load writes the uint8 arrays to ``tiny-imagenet-200.lamaml-cache.npz`` beside the source
(1.35 GB, uncompressed: it reads back in ~1 s). The archive checksum is only computed when the
cache is built; the cache records the source's path, size and mtime and is rebuilt when they
change or when it cannot be read.

Order: label ``k`` is the k-th wnid in sorted order (``wnids.txt`` lists the same 200 in another order):
the order of torchvision's ImageFolder, which the authors' loader uses, so a seed's class order
picks the same classes for each task as theirs; training images are grouped by label and
sorted by file name within a class; the val images (our test split) are sorted by file name and
labelled from ``val_annotations.txt``.
"""
from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import sys
import warnings
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_open
from ..errors import DataError, UserError
from .files import verify
from .images import ImageSet
from .safety import safe_member_path

try:  # Pillow is only needed here; the MNIST benchmarks run without it
    from PIL import Image
except ImportError:  # pragma: no cover - depends on the environment
    Image = None

ROOT = "tiny-imagenet-200"
OFFICIAL_ZIP, TRAINVAL_ZIP = f"{ROOT}.zip", f"{ROOT}-trainval.zip"
# archive name -> (hash algorithm, hex digest, size in bytes, what it is)
KNOWN_ARCHIVES = {
    OFFICIAL_ZIP: ("md5", "90528d7ca1a48142e341f4ef8d21d0de", 248_100_043, "the official archive"),
    TRAINVAL_ZIP: ("sha256", "ac3772e13f64c53a8ba8067d7e39caef1dc1b65afd1fbf95b131a5c8a0e5f838", 240_822_492,
                   "the shared train+val copy"),
}
CACHE_NAME = f"{ROOT}.lamaml-cache.npz"
CACHE_VERSION = 2    # 2: labels in sorted-wnid order (1: wnids.txt order)
SIZE = 64
CHUNK = 500             # images per worker task: amortises the transfer, keeps the progress bar moving
PARALLEL_FROM = 4000    # below this, starting worker processes costs more than it saves
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
_warned: set[str] = set()


# ----------------------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class _Source:
    path: Path
    is_zip: bool

    def member(self, rel: str) -> str:
        """How a message names ``rel`` (a path relative to tiny-imagenet-200/)."""
        return f"{self.path}:{ROOT}/{rel}" if self.is_zip else str(self.path / rel)


def _locate(data_dir: Path) -> _Source:
    folder, official, trainval = data_dir / ROOT, data_dir / OFFICIAL_ZIP, data_dir / TRAINVAL_ZIP
    if folder.is_dir():
        return _Source(folder, False)
    for archive in (official, trainval):
        if archive.is_file():
            return _Source(archive, True)
    raise DataError(f"Tiny ImageNet-200 not found: looked for the folder {folder}/, {official} and {trainval} "
                    f"(there is no download, the official host is gone; set --data-dir or $LAMAML_DATA)")


class _Reader:
    """Member listing and random-access reads, one per process (a ZipFile cannot cross processes)."""

    def __init__(self, source: _Source):
        self.source = source
        self.root = source.path.resolve()
        self.zip = None
        if source.is_zip:
            try:
                self.zip = zipfile.ZipFile(source.path)
            except (zipfile.BadZipFile, OSError) as error:
                raise DataError(f"{source.path} is not a readable zip ({error}); "
                                f"replace it with an intact copy") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.zip is not None:
            self.zip.close()

    def names(self) -> list[str]:
        """Every file, as a '/'-separated path relative to tiny-imagenet-200/."""
        if self.zip is not None:
            prefix = ROOT + "/"
            return [n[len(prefix):] for n in self.zip.namelist() if n.startswith(prefix) and not n.endswith("/")]
        return [Path(folder, name).relative_to(self.root).as_posix()
                for folder, _, files in os.walk(self.root) for name in files]

    def read(self, rel: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(f"{ROOT}/{rel}")
            return safe_member_path(self.root, rel).read_bytes()
        except (KeyError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise DataError(f"{self.source.member(rel)} cannot be read ({error}); the data set is damaged") from None


# ------------------------------------------------------------------------------------------ index

@dataclass(frozen=True)
class _Index:
    classes: tuple[str, ...]
    train: list[tuple[str, int]]    # (member, label) by label, then file name
    test: list[tuple[str, int]]     # val/images members by file name


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith((".jpeg", ".jpg"))


def _read_text(reader: _Reader, names: set[str], rel: str) -> str:
    if rel not in names:
        raise DataError(f"{reader.source.member(rel)} is missing: {reader.source.path} is not Tiny ImageNet-200 "
                        f"in the official layout")
    return reader.read(rel).decode("utf-8", errors="replace")


def _read_classes(reader: _Reader, names: set[str]) -> tuple[str, ...]:
    """The wnids, sorted as ImageFolder sorts its class folders (the authors' label order)."""
    listed = _read_text(reader, names, "wnids.txt").split()
    if not listed or len(set(listed)) != len(listed):
        raise DataError(f"{reader.source.member('wnids.txt')} is empty or lists a class twice")
    return tuple(sorted(listed))


def _read_annotations(reader: _Reader, names: set[str], label: dict[str, int]) -> dict[str, int]:
    """val/val_annotations.txt: file name -> label."""
    rel = "val/val_annotations.txt"
    annotations = {}
    for number, line in enumerate(_read_text(reader, names, rel).splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in label or fields[0] in annotations:
            raise DataError(f"{reader.source.member(rel)} line {number} is malformed, repeats a file or names "
                            f"a class not in wnids.txt: {line[:80]!r}")
        annotations[fields[0]] = label[fields[1]]
    return annotations


def _index(reader: _Reader) -> _Index:
    """The labelled images, from the member listing and the two text files: nothing is decoded."""
    names = set(reader.names())
    classes = _read_classes(reader, names)
    label = {wnid: k for k, wnid in enumerate(classes)}
    train, val = [], []
    for rel in names:
        parts = rel.split("/")
        if not _is_jpeg(parts[-1]):
            continue
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images":
            if parts[1] not in label:
                raise DataError(f"{reader.source.member(rel)} is in class {parts[1]}, which wnids.txt does not list")
            train.append((label[parts[1]], rel))    # within a class, rel sorts as the file name does
        elif len(parts) == 3 and parts[:2] == ["val", "images"]:
            val.append(rel)
    empty = sorted(set(classes) - {classes[y] for y, _ in train})
    if empty:
        raise DataError(f"{reader.source.path} has no training images for class {empty[0]} "
                        f"({len(empty)} classes empty): the data set is incomplete")
    annotations = _read_annotations(reader, names, label)
    test = []
    for rel in sorted(val):
        name = rel.rsplit("/", 1)[1]
        if name not in annotations:
            raise DataError(f"{reader.source.member(rel)} has no label in val/val_annotations.txt")
        test.append((rel, annotations.pop(name)))
    if annotations:
        raise DataError(f"val/val_annotations.txt in {reader.source.path} labels {len(annotations)} images missing "
                        f"from val/images (e.g. {min(annotations)}): the data set is incomplete")
    return _Index(classes, [(rel, y) for y, rel in sorted(train)], test)


def _limit(index: _Index, classes_limit: int | None, per_class_limit: int | None) -> _Index:
    """The first ``classes_limit`` classes, the first ``per_class_limit`` images of each (in order)."""
    for name, value in (("classes_limit", classes_limit), ("per_class_limit", per_class_limit)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"{name} must be a positive integer, not {value!r}")
    n_classes = len(index.classes) if classes_limit is None else min(classes_limit, len(index.classes))
    per_class = per_class_limit or max(len(index.train), len(index.test))

    def keep(entries):
        seen = Counter()
        kept = []
        for rel, y in entries:
            if y < n_classes and seen[y] < per_class:
                seen[y] += 1
                kept.append((rel, y))
        return kept
    return _Index(index.classes[:n_classes], keep(index.train), keep(index.test))


# ----------------------------------------------------------------------------------------- decode

def _decode_image(data: bytes, where: str) -> np.ndarray:
    """One JPEG -> uint8 (3, 64, 64). About 2% are greyscale ('L'): converted to 3 equal channels."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{where} is not a readable image ({error}); the data set is damaged") from None
    if image.size != (SIZE, SIZE):
        raise DataError(f"{where} is {image.size[0]}x{image.size[1]} pixels, Tiny ImageNet images are {SIZE}x{SIZE}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image).transpose(2, 0, 1)


def _decode_chunk(reader: _Reader, members: list[str]) -> np.ndarray:
    out = np.empty((len(members), 3, SIZE, SIZE), dtype=np.uint8)
    for i, rel in enumerate(members):
        out[i] = _decode_image(reader.read(rel), reader.source.member(rel))
    return out


_worker_reader: _Reader | None = None
_worker_out: np.ndarray | None = None


def _worker_start(source: _Source, out: np.ndarray) -> None:
    global _worker_reader, _worker_out
    _worker_reader, _worker_out = _Reader(source), out


def _worker_decode(start: int, members: list[str]) -> int:
    _worker_out[start:start + len(members)] = _decode_chunk(_worker_reader, members)
    return len(members)


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 4))


def _decode_all(reader: _Reader, members: list[str], workers: int) -> np.ndarray:
    """Decode ``members`` in order, in worker processes when there are many, with a progress bar.

    Workers are forked (spawn would re-import torch in each, seconds) and write straight into an
    anonymous shared mapping, so no pixels travel through pipes. Fork is only used on Linux (it is
    unsafe on macOS); elsewhere decoding stays in this process. The workers touch only Pillow and
    numpy, so torch's threads in the parent do not concern them.
    """
    shape = (len(members), 3, SIZE, SIZE)
    chunks = [(start, members[start:start + CHUNK]) for start in range(0, len(members), CHUNK)]
    parallel = workers > 1 and len(members) >= PARALLEL_FROM and sys.platform.startswith("linux")
    with tqdm(total=len(members), desc="decoding Tiny ImageNet", unit="img", disable=None, file=sys.stderr) as bar:
        if not parallel:
            out = np.empty(shape, dtype=np.uint8)
            for start, chunk in chunks:
                out[start:start + len(chunk)] = _decode_chunk(reader, chunk)
                bar.update(len(chunk))
            return out
        out = np.frombuffer(mmap.mmap(-1, int(np.prod(shape))), dtype=np.uint8).reshape(shape)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_start, initargs=(reader.source, out))
        try:
            for future in as_completed([pool.submit(_worker_decode, start, chunk) for start, chunk in chunks]):
                bar.update(future.result())     # a worker's DataError is raised here
        finally:    # on an error, drop the queued chunks instead of decoding them all first
            pool.shutdown(wait=True, cancel_futures=True)
    return out


# ------------------------------------------------------------------------------- checksum and cache

def _verify(source: _Source) -> str:
    """Check a known archive's size, then its hash; returns 'algo:digest' ('' for a folder)."""
    if not source.is_zip:
        return ""
    algorithm, expected, size, what = KNOWN_ARCHIVES[source.path.name]
    actual_size = source.path.stat().st_size
    if actual_size != size:
        raise DataError(f"{source.path} is {actual_size:,} bytes, {what} is {size:,}: it is truncated or another "
                        f"file; replace it with an intact copy")
    actual = verify(source.path, expected, algorithm, whose=f"{what}'s", remedy="replace it with an intact copy")
    return f"{algorithm}:{actual}"


def _identity(source: _Source) -> tuple[str, int, int]:
    """(resolved path, size, mtime_ns); for a folder, its files' total size and newest mtime."""
    path = source.path.resolve()
    if source.is_zip:
        stat = path.stat()
        return str(path), stat.st_size, stat.st_mtime_ns
    size = mtime = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(folder, name))
            size, mtime = size + stat.st_size, max(mtime, stat.st_mtime_ns)
    return str(path), size, mtime


def _image_set(arrays: dict[str, np.ndarray], classes: tuple[str, ...]) -> ImageSet:
    """Check the arrays (they may come from a damaged cache) and wrap them without copying."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        in_range = len(labels) == 0 or 0 <= labels.min() <= labels.max() < len(classes)
        if (images.dtype != np.uint8 or images.shape[1:] != (3, SIZE, SIZE) or labels.dtype != np.int64
                or labels.shape != images.shape[:1] or not in_range):
            raise ValueError(f"{split} arrays have the wrong type, shape or labels")
    return ImageSet(*(torch.from_numpy(arrays[key]) for key in ARRAYS), classes=classes)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=4)   # the caller of load_tinyimagenet


def _read_cache(path: Path, identity: tuple[str, int, int]) -> ImageSet | None:
    """The cached data set if ``path`` holds one for this very source; None when absent or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:   # no pickles: a cache cannot run code
            recorded = (str(stored["source_path"]), int(stored["source_size"]), int(stored["source_mtime_ns"]))
            if int(stored["version"]) != CACHE_VERSION or recorded != identity:
                return None     # the source changed since: rebuild
            arrays = {key: stored[key] for key in ARRAYS}
            classes = tuple(str(c) for c in stored["classes"])
        return _image_set(arrays, classes)
    except Exception as error:  # noqa: BLE001 - truncated, foreign or damaged: never trust it, rebuild
        warnings.warn(f"{path} cannot be read ({type(error).__name__}: {error}); decoding the images again "
                      f"and rewriting it", stacklevel=3)
        return None


def _write_cache(path: Path, data: ImageSet, identity: tuple[str, int, int], digest: str) -> None:
    """Write atomically (lamaml.atomic), so a reader never sees half a cache."""
    try:
        with atomic_open(path, "wb") as handle:
            np.savez(handle, version=np.int64(CACHE_VERSION), source_path=np.str_(identity[0]),
                     source_size=np.int64(identity[1]), source_mtime_ns=np.int64(identity[2]),
                     source_digest=np.str_(digest), classes=np.array(data.classes, dtype=np.str_),
                     **{key: getattr(data, key).numpy() for key in ARRAYS})
    except OSError as error:    # an unwritable folder, a full disk: the data set is fine, only the cache is lost
        _warn_once(str(path.parent), f"cannot write the Tiny ImageNet cache {path} ({error}); going on without it, "
                                     f"so every load decodes again (pass cache_dir=)")


# ------------------------------------------------------------------------------------------- API

def default_cache_dir(source_dir: Path) -> Path:
    """``$LAMAML_CACHE``, else ``~/.cache/lamaml``: never the data folder itself, which is input
    (often shared or read-only, and root may write where it should not)."""
    return Path(os.environ.get("LAMAML_CACHE") or Path.home() / ".cache" / "lamaml")


def load_tinyimagenet(data_dir: Path, cache: bool = True, *, cache_dir: Path | None = None,
                      classes_limit: int | None = None, per_class_limit: int | None = None,
                      workers: int | None = None) -> ImageSet:
    """Tiny ImageNet-200: 100,000 training and 10,000 labelled val images (our test split), uint8.

    ``cache``: read/write the decoded arrays in ``cache_dir`` (default: ``default_cache_dir``).
    ``classes_limit`` / ``per_class_limit`` (for tests and smoke runs): keep only the first k
    classes in sorted-wnid order and the first m images per class of each split; such a subset is never
    cached. ``workers``: decoding processes (default: up to 4, one per available core).
    """
    if Image is None:
        raise UserError("reading Tiny ImageNet needs Pillow: pip install pillow")
    source = _locate(Path(data_dir))
    use_cache = cache and classes_limit is None and per_class_limit is None
    cache_path = Path(cache_dir if cache_dir is not None else default_cache_dir(source.path.parent)) / CACHE_NAME
    if use_cache:
        identity = _identity(source)
        cached = _read_cache(cache_path, identity)
        if cached is not None:
            return cached
    digest = _verify(source)
    with _Reader(source) as reader:
        index = _limit(_index(reader), classes_limit, per_class_limit)
        images = _decode_all(reader, [rel for rel, _ in index.train + index.test],
                             _default_workers() if workers is None else workers)
    n_train = len(index.train)
    labels = lambda entries: np.array([y for _, y in entries], dtype=np.int64)  # noqa: E731
    data = _image_set({"train_images": images[:n_train], "train_labels": labels(index.train),
                       "test_images": images[n_train:], "test_labels": labels(index.test)}, index.classes)
    if use_cache:
        _write_cache(cache_path, data, identity, digest)
    return data


def tinyimagenet_inventory(data_dir: Path) -> dict:
    """What the source holds, from the zip's central directory or the folder listing plus the two
    text files: no image is decoded and no checksum computed, so it takes about a second."""
    source = _locate(Path(data_dir))
    with _Reader(source) as reader:
        index = _index(reader)
    train, val = Counter(y for _, y in index.train), Counter(y for _, y in index.test)
    return {"source": str(source.path), "classes": len(index.classes),
            "train_per_class": {wnid: train[k] for k, wnid in enumerate(index.classes)},
            "val_per_class": {wnid: val[k] for k, wnid in enumerate(index.classes)},
            "train_images": len(index.train), "val_images": len(index.test)}
