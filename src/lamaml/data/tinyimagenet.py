"""Tiny ImageNet-200 as an ImageSet: its images decoded once, then cached.

Where the files are and what they hold (a folder or one of two zips, checksums, the label
order): ``tinyimagenet_archive.py``. There is no download: the official host is gone.

Decoding the 110,000 JPEGs costs ~18 s of CPU (25-30 s wall on 2 shared cores), so the first
load writes the uint8 arrays to ``tiny-imagenet-200.lamaml-cache.npz`` in the cache folder
(``$LAMAML_CACHE``, else ``~/.cache/lamaml``; 1.35 GB, uncompressed: it reads back in ~1 s). The
content check (``tinyimagenet_archive.verify_content``) runs whenever images are decoded, not when
the cache is read; the cache records the source's path, size and mtime and is rebuilt when they
change or when it cannot be read.
"""
from __future__ import annotations

import hashlib
import io
import mmap
import multiprocessing
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_open
from ..errors import DataError, UserError
from . import tinyimagenet_archive as archive
from .images import ImageSet
from .tinyimagenet_archive import ROOT

try:  # Pillow is only needed here; the MNIST benchmarks run without it
    from PIL import Image
except ImportError:  # pragma: no cover - depends on the environment
    Image = None

CACHE_NAME = f"{ROOT}.lamaml-cache.npz"
CACHE_VERSION = 2    # 2: labels in sorted-wnid order (1: wnids.txt order)
SIZE = 64
CHUNK = 500             # images per worker task: amortises the transfer, keeps the progress bar moving
PARALLEL_FROM = 4000    # below this, starting worker processes costs more than it saves
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
_warned: set[str] = set()


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


def _decode_chunk(reader: archive.Reader, members: list[str]) -> np.ndarray:
    out = np.empty((len(members), 3, SIZE, SIZE), dtype=np.uint8)
    for i, rel in enumerate(members):
        out[i] = _decode_image(reader.read(rel), reader.source.member(rel))
    return out


_worker_reader: archive.Reader | None = None
_worker_out: np.ndarray | None = None


def _worker_start(source: archive.Source, out: np.ndarray) -> None:
    global _worker_reader, _worker_out
    _worker_reader, _worker_out = archive.Reader(source), out


def _worker_decode(start: int, members: list[str]) -> int:
    _worker_out[start:start + len(members)] = _decode_chunk(_worker_reader, members)
    return len(members)


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 4))


def _decode_all(reader: archive.Reader, members: list[str], workers: int) -> np.ndarray:
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

Identity = tuple[str, int, int, str]


def _identity(source: archive.Source) -> Identity:
    """(resolved path, size, mtime_ns, listing); for a folder, its files' total size, newest mtime and a
    digest of their names and sizes (a rename or a move, say of two class folders, changes no size or
    mtime, but does change which label an image gets); a zip's listing is its own size and mtime: ""."""
    path = source.path.resolve()
    if source.is_zip:
        stat = path.stat()
        return str(path), stat.st_size, stat.st_mtime_ns, ""
    size = mtime = 0
    listing = []
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(folder, name))
            size, mtime = size + stat.st_size, max(mtime, stat.st_mtime_ns)
            listing.append(f"{os.path.relpath(os.path.join(folder, name), path)}\t{stat.st_size}")
    return str(path), size, mtime, hashlib.sha256("\n".join(sorted(listing)).encode()).hexdigest()


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


def _read_cache(path: Path, identity: Identity) -> ImageSet | None:
    """The cached data set if ``path`` holds one for this very source; None when absent or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:   # no pickles: a cache cannot run code
            listing = str(stored["source_listing"]) if "source_listing" in stored.files else ""   # older caches
            recorded = (str(stored["source_path"]), int(stored["source_size"]), int(stored["source_mtime_ns"]), listing)
            if int(stored["version"]) != CACHE_VERSION or recorded != identity:
                return None     # the source changed since: rebuild
            arrays = {key: stored[key] for key in ARRAYS}
            classes = tuple(str(c) for c in stored["classes"])
        return _image_set(arrays, classes)
    except Exception as error:  # noqa: BLE001 - truncated, foreign or damaged: never trust it, rebuild
        warnings.warn(f"{path} cannot be read ({type(error).__name__}: {error}); decoding the images again "
                      f"and rewriting it", stacklevel=3)
        return None


def _write_cache(path: Path, data: ImageSet, identity: Identity, digest: str) -> None:
    """Write atomically (lamaml.atomic), so a reader never sees half a cache."""
    try:
        with atomic_open(path, "wb") as handle:
            np.savez(handle, version=np.int64(CACHE_VERSION), source_path=np.str_(identity[0]),
                     source_size=np.int64(identity[1]), source_mtime_ns=np.int64(identity[2]),
                     source_listing=np.str_(identity[3]),
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
    source = archive.locate(Path(data_dir))
    use_cache = cache and classes_limit is None and per_class_limit is None
    cache_path = Path(cache_dir if cache_dir is not None else default_cache_dir(source.path.parent)) / CACHE_NAME
    if use_cache:
        identity = _identity(source)
        cached = _read_cache(cache_path, identity)
        if cached is not None:
            return cached
    with archive.Reader(source) as reader:
        full = archive.read_index(reader)
        digest = archive.verify_content(reader, full)    # the whole set, even when a subset is decoded
        index = archive.limit_index(full, classes_limit, per_class_limit)
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
    source = archive.locate(Path(data_dir))
    with archive.Reader(source) as reader:
        index = archive.read_index(reader)
    train, val = Counter(y for _, y in index.train), Counter(y for _, y in index.test)
    return {"source": str(source.path), "classes": len(index.classes),
            "train_per_class": {wnid: train[k] for k, wnid in enumerate(index.classes)},
            "val_per_class": {wnid: val[k] for k, wnid in enumerate(index.classes)},
            "train_images": len(index.train), "val_images": len(index.test)}
