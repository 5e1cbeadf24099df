"""Reading files from others without letting them run code or write outside their folder.

* ``load_restricted_pickle``: the CIFAR-100 python-format files are pickles; a pickle can name
  any callable to run on load. This unpickler admits only what that format needs (numpy arrays,
  their dtypes, and plain containers) and refuses everything else before it is called.
* ``safe_member_path`` / ``extract_tar``: an archive member named ``../x`` or ``/etc/x`` (or a
  link pointing out) is refused instead of written outside the target folder.
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
from pathlib import Path

from ..atomic import atomic_open
from ..errors import DataError

# (module, name) pairs a CIFAR-format pickle may reference: numpy's array reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),       # how Python 3 pickles bytes at protocol 2
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str, **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(f"{self.source} refers to {module}.{name}, which a data file has no reason to "
                        f"contain; refusing to load it (it could run code)")


def load_restricted_pickle(data: bytes, source: str, encoding: str = "bytes"):
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source, encoding=encoding).load()
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - any parse failure means a corrupt file
        raise DataError(f"{source} is corrupt: cannot unpickle it ({error.__class__.__name__}: {error})") from None


def safe_member_path(root: Path, name: str) -> Path:
    """Where archive member ``name`` goes under ``root``; refuses absolute and escaping names."""
    root = Path(root).resolve()
    if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or ":" in Path(name).parts[0]:
        raise DataError(f"archive member {name!r} has an empty or absolute path; refusing to extract it")
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise DataError(f"archive member {name!r} would be written outside {root}; refusing to extract it")
    return target


def extract_tar(archive: Path, target: Path) -> None:
    """Extract a tar(.gz) after checking every member; links and devices are refused. Each file is
    written atomically, so an interrupted extraction leaves no truncated file under its name."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            safe_member_path(target, member.name)
            if not (member.isfile() or member.isdir()):
                raise DataError(f"archive member {member.name!r} is a link or device; refusing to extract it")
        for member in members:
            destination = safe_member_path(target, member.name)
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            with tar.extractfile(member) as source, atomic_open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
