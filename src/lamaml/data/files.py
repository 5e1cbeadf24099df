"""Finding, verifying and downloading data files.

Every file we know is checked against the digest of its official content (sha256, or md5 where that
is all its publishers give) before it is trusted, so a truncated download or a flipped byte is
caught as a clear error naming the file and both digests rather than a silently wrong number. The
loaders hash the content, not the packing, so a copy unpacked or packed again passes. ``download`` is
the one way a data file arrives: mirrors in order, a timeout, the digest checked, atomic placement.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..atomic import atomic_open
from ..errors import DataError

DATA_ENV = "LAMAML_DATA"
NO_DOWNLOAD_ENV = "LAMAML_NO_DOWNLOAD"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir`` wins, then ``$LAMAML_DATA``, then ``./data``."""
    chosen = data_dir or os.environ.get(DATA_ENV) or "data"
    return Path(chosen).expanduser()


def _hasher(algorithm: str):
    # md5 only to match checksums its publishers give (CIFAR, Tiny ImageNet), not for security
    return hashlib.new(algorithm, usedforsecurity=algorithm != "md5")


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks."""
    digest = _hasher(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(source: str, actual: str, expected: str, algorithm: str = "sha256",
                 whose: str = "the official file's", remedy: str = "delete it and download it again",
                 subject: str = "its") -> None:
    """A DataError naming ``source``, the digest it has and the digest it should have, unless they match
    (``subject`` says what was hashed: "its" for the file, "its decompressed content's", ...)."""
    if actual != expected:
        raise DataError(f"{source} is corrupt: {subject} {algorithm} is {actual}, {whose} is {expected}; {remedy}")


def verify(path: Path, expected: str, algorithm: str = "sha256", whose: str = "the official file's",
           remedy: str = "delete it and download it again") -> str:
    """Check a file against its published digest (see check_digest); returns the digest."""
    actual = digest_of(path, algorithm)
    check_digest(str(path), actual, expected, algorithm, whose, remedy)
    return actual


def downloads_allowed() -> bool:
    return os.environ.get(NO_DOWNLOAD_ENV, "").lower() not in {"1", "true", "yes"}


@contextmanager
def no_new_folders_on_failure(target: Path) -> Iterator[None]:
    """On an error in the block, remove the folders on the way to ``target`` that the block created,
    deepest first, while they are empty: a failed download leaves the data folder as it found it.
    (A partial file never stays: ``download`` writes atomically.) Only empty folders are removed,
    so another process's file in one keeps it."""
    created = []
    for folder in [Path(target).parent, *Path(target).parent.parents]:
        if folder.exists():
            break
        created.append(folder)
    try:
        yield
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:     # absent, or holds something now: leave it and the folders above it
                break
        raise


def download(urls: list[str], target: Path, digest: str, algorithm: str = "sha256", timeout: float = 30.0) -> None:
    """Fetch ``target`` from the first of ``urls`` that answers with the right file, hashing it as it arrives.

    The file only appears under its final name once its digest holds (lamaml.atomic), so an
    interrupted or corrupt download never leaves a file that looks complete (callers wrap it in
    ``no_new_folders_on_failure`` so no empty folder stays either). When every URL fails, one
    DataError names the file and what went wrong at each.
    """
    errors = []
    for url in urls:
        try:
            with atomic_open(target, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as source:
                received = _hasher(algorithm)
                for block in iter(lambda: source.read(1 << 20), b""):
                    received.update(block)
                    out.write(block)
                check_digest(f"the file downloaded from {url}", received.hexdigest(), digest, algorithm,
                             remedy="try again later")
            return
        except (OSError, DataError) as error:
            errors.append(f"{url}: {error}")
    raise DataError(f"could not download {target.name} ({'; '.join(errors)})")
