"""Tiny ImageNet-200's files: where they are, reading them without extracting, what they hold.

Sources, looked for under ``data_dir`` in this order (the first one present is used):

1. ``tiny-imagenet-200/``: the official zip unpacked (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
   ``val/images/*.JPEG``, ``val/val_annotations.txt``);
2. ``tiny-imagenet-200.zip``: the official archive;
3. ``tiny-imagenet-200-trainval.zip``: the shared copy without ``test/``.

Each is checked by its content, not its packing (``verify_content``): the sha256 of the sorted
lines ``name<TAB>size<TAB>CRC-32`` of the files the loader reads (the labelled images and the two
label files), so a folder, the official zip, the shared copy and any zip packed again pass when
they hold the same files. A zip gives those lines from its directory without reading a byte, and
zipfile checks each member's CRC-32 as it is read, so what is decoded is what was checked; a
folder's files are read once to compute them (2-4 s for the 110,002 files on 2 shared cores).

Zip members are read by random access straight from the archive; nothing is extracted, so a
hostile member name cannot write anywhere; a folder's files are read through
``safe_member_path``. The index of labelled images comes from the member listing and the two text
files alone (nothing is decoded): label ``k`` is the k-th wnid in sorted order, training images
grouped by label and sorted by file name within a class, the val images (our test split) sorted
by file name and labelled from ``val_annotations.txt``. Decoding and caching: ``tinyimagenet.py``.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UserError
from .files import digest_of
from .safety import safe_member_path

ROOT = "tiny-imagenet-200"
OFFICIAL_ZIP, TRAINVAL_ZIP = f"{ROOT}.zip", f"{ROOT}-trainval.zip"
# content fingerprint (see verify_content) -> what holds it; computed from the shared trainval copy,
# whose labelled files were cross-checked against an independent copy of the release
KNOWN_CONTENT = {
    "a3c7f404000d54a72beaa45e3c7e264e28055b84e3fa89f11aeb77e7d30e6006": "the release's 110,000 labelled images",
}
# archive name -> (hash algorithm, hex digest, size in bytes, what it is): the official zip is
# trusted by its md5 even should its files' bytes differ from the shared copy's, which we cannot see
KNOWN_ARCHIVES = {
    OFFICIAL_ZIP: ("md5", "90528d7ca1a48142e341f4ef8d21d0de", 248_100_043, "the official archive"),
    TRAINVAL_ZIP: ("sha256", "ac3772e13f64c53a8ba8067d7e39caef1dc1b65afd1fbf95b131a5c8a0e5f838", 240_822_492,
                   "the shared train+val copy"),
}


# ----------------------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class Source:
    path: Path
    is_zip: bool

    def member(self, rel: str) -> str:
        """How a message names ``rel`` (a path relative to tiny-imagenet-200/)."""
        return f"{self.path}:{ROOT}/{rel}" if self.is_zip else str(self.path / rel)


def locate(data_dir: Path) -> Source:
    folder, official, trainval = data_dir / ROOT, data_dir / OFFICIAL_ZIP, data_dir / TRAINVAL_ZIP
    if folder.is_dir():
        return Source(folder, False)
    for archive in (official, trainval):
        if archive.is_file():
            return Source(archive, True)
    raise DataError(f"Tiny ImageNet-200 not found: looked for the folder {folder}/, {official} and {trainval} "
                    f"(there is no download, the official host is gone; set --data-dir or $LAMAML_DATA)")


class Reader:
    """Member listing and random-access reads, one per process (a ZipFile cannot cross processes)."""

    def __init__(self, source: Source):
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

    def size_crc(self, rel: str) -> tuple[int, int]:
        """(size, CRC-32) of a file's content: a zip's directory says it (and zipfile checks it on every
        read); a folder's file is read. Its name came from walking the folder, so it needs no
        safe_member_path: a link is only read here, and refused when the images are read."""
        try:
            if self.zip is not None:
                info = self.zip.getinfo(f"{ROOT}/{rel}")
                return info.file_size, info.CRC
            data = (self.root / rel).read_bytes()
            return len(data), zlib.crc32(data)
        except (KeyError, OSError) as error:
            raise DataError(f"{self.source.member(rel)} cannot be read ({error}); the data set is damaged") from None

    def read(self, rel: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(f"{ROOT}/{rel}")
            return safe_member_path(self.root, rel).read_bytes()
        except (KeyError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise DataError(f"{self.source.member(rel)} cannot be read ({error}); the data set is damaged") from None


# ------------------------------------------------------------------------------------------ index

@dataclass(frozen=True)
class Index:
    classes: tuple[str, ...]
    train: list[tuple[str, int]]    # (member, label) by label, then file name
    test: list[tuple[str, int]]     # val/images members by file name


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith((".jpeg", ".jpg"))


def _read_text(reader: Reader, names: set[str], rel: str) -> str:
    if rel not in names:
        raise DataError(f"{reader.source.member(rel)} is missing: {reader.source.path} is not Tiny ImageNet-200 "
                        f"in the official layout")
    return reader.read(rel).decode("utf-8", errors="replace")


def _read_classes(reader: Reader, names: set[str]) -> tuple[str, ...]:
    """The wnids, sorted as ImageFolder sorts its class folders (the authors' label order)."""
    listed = _read_text(reader, names, "wnids.txt").split()
    if not listed or len(set(listed)) != len(listed):
        raise DataError(f"{reader.source.member('wnids.txt')} is empty or lists a class twice")
    return tuple(sorted(listed))


def _read_annotations(reader: Reader, names: set[str], label: dict[str, int]) -> dict[str, int]:
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


def read_index(reader: Reader) -> Index:
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
    return Index(classes, [(rel, y) for y, rel in sorted(train)], test)


def limit_index(index: Index, classes_limit: int | None, per_class_limit: int | None) -> Index:
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
    return Index(index.classes[:n_classes], keep(index.train), keep(index.test))


# ------------------------------------------------------------------------------------- checksum

def fingerprint(reader: Reader, index: Index) -> str:
    """sha256 of the sorted 'name<TAB>size<TAB>crc32' lines of the files the loader reads: the same for
    every folder or zip that holds the same files, however packed."""
    names = ["wnids.txt", "val/val_annotations.txt", *(rel for rel, _ in index.train + index.test)]
    lines = sorted("%s\t%d\t%08x\n" % (rel, *reader.size_crc(rel)) for rel in names)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _known_archive_digest(source: Source) -> str:
    """'algo:digest' when ``source`` is a known archive byte for byte (size first: cheap), else ''."""
    if not source.is_zip or source.path.name not in KNOWN_ARCHIVES:
        return ""
    algorithm, expected, size, _ = KNOWN_ARCHIVES[source.path.name]
    if source.path.stat().st_size != size or digest_of(source.path, algorithm) != expected:
        return ""
    return f"{algorithm}:{expected}"


def verify_content(reader: Reader, index: Index) -> str:
    """Check that the source holds the release's files (by ``fingerprint`` of the full index, or a known
    archive byte for byte); returns how it was checked, 'content:<sha256>' or 'algo:digest'."""
    actual = fingerprint(reader, index)
    if actual in KNOWN_CONTENT:
        return f"content:{actual}"
    known = _known_archive_digest(reader.source)
    if known:
        return known
    expected = next(iter(KNOWN_CONTENT))
    raise DataError(f"{reader.source.path} is corrupt or not Tiny ImageNet-200: the sha256 of its labelled files' "
                    f"names, sizes and CRC-32s is {actual}, the release's is {expected} (it has {len(index.train):,} "
                    f"training and {len(index.test):,} val images, the release 100,000 and 10,000); replace it "
                    f"with an intact copy")
