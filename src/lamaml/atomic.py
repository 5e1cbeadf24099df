"""Writing a file so that a crash never leaves a half-written one under its final name.

Every write goes to a temporary file beside the target (same folder, so the same file system and
an atomic rename), is flushed and fsynced, and only then moved over the target with
``os.replace``; on any failure the temporary file is removed and the target is left as it was.
Temporary files are named ``.<target name>.<random>.tmp`` and are created as ``open`` would create
the target (permissions from the umask). A write that fails for want of space or permission raises
``WriteFailed`` (an OSError) naming the target, so the command line can say which file was not
written in one line. Imports only ``lamaml.errors``, so every layer may use it.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from .errors import WriteFailed

# What only a write says: the storage is full. Only these are turned into WriteFailed when they come
# from the caller's block, since other OSErrors there may be its reads' (a download feeding the file).
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _failed(target: Path, error: OSError) -> WriteFailed:
    return WriteFailed(f"cannot write {target} ({error.strerror or error})", error.errno)


@contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Any OSError of the writer's own steps (create, fsync, rename) becomes a WriteFailed naming ``target``."""
    try:
        yield
    except WriteFailed:
        raise
    except OSError as error:
        raise _failed(target, error) from error


def _fresh_temporary(target: Path, suffix: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:     # a name another writer drew: draw again
            continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power loss right after it could otherwise bring back the old
    name); where a platform or file system cannot sync a folder, the rename stands as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = ".tmp",
                before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """A fresh empty file beside ``target`` for a writer that wants a path (``figure.savefig``, an
    extraction); when the block ends without an error it is fsynced, ``before_replace`` is called
    (e.g. to keep the previous version) and it is moved over ``target``. ``suffix`` ends the
    temporary name, for writers that pick the format by it (``.tmp.png``)."""
    target = Path(target)
    with _naming(target):
        tmp = _fresh_temporary(target, suffix)
    try:
        try:
            yield tmp
        except OSError as error:
            if error.errno in STORAGE_ERRORS and not isinstance(error, WriteFailed):
                raise _failed(target, error) from error
            raise
        with _naming(target):
            _fsync(tmp)
            if before_replace is not None:
                before_replace()
            os.replace(tmp, target)
            _fsync_folder(target.parent)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "wb", *, before_replace: Callable[[], None] | None = None,
                **open_options: Any) -> Iterator[IO]:
    """``open(target, mode)`` for writing (``"w"`` or ``"wb"``), made atomic as ``atomic_path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole new file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(target, before_replace=before_replace) as tmp:
        with open(tmp, mode, **open_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str | None = None) -> None:
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """``payload`` as JSON, indented by 2, ending in a newline."""
    with atomic_open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
