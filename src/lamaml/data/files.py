"""Finding, verifying and downloading data files.

Every file we know is checked against its published sha256 before it is trusted, so a truncated
download or a flipped byte is caught as a clear error rather than a silently wrong number.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from ..errors import DataError

DATA_ENV = "LAMAML_DATA"
NO_DOWNLOAD_ENV = "LAMAML_NO_DOWNLOAD"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir`` wins, then ``$LAMAML_DATA``, then ``./data``."""
    chosen = data_dir or os.environ.get(DATA_ENV) or "data"
    return Path(chosen).expanduser()


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (md5 only to match published checksums)."""
    digest = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return digest_of(path, "sha256")


def verify(path: Path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise DataError(
            f"{path} is corrupt: its sha256 is {actual[:16]}..., the official file's is "
            f"{sha256[:16]}...; delete it and download it again"
        )


def downloads_allowed() -> bool:
    return os.environ.get(NO_DOWNLOAD_ENV, "").lower() not in {"1", "true", "yes"}


def download(urls: list[str], target: Path, sha256: str, timeout: float = 30.0) -> None:
    """Fetch ``target`` from the first URL that answers, verify it, then move it in place.

    The file only appears under its final name once its checksum holds, so an interrupted
    download never leaves a half-written file that looks complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
                shutil.copyfileobj(src, out)
            verify(Path(tmp_name), sha256)
            os.replace(tmp_name, target)
            return
        except (OSError, DataError) as error:
            errors.append(f"{url}: {error}")
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    raise DataError(f"could not download {target.name} ({'; '.join(errors)})")
