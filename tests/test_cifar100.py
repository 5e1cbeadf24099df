"""CIFAR-100 is read from small files made here in exactly the official python format.

The official files were written by Python 2: protocol 2 pickles whose strings (keys, file names,
the raw bytes of the numpy array) are Python 2 ``str``, i.e. BINSTRING opcodes, and whose array
reconstructor is ``numpy.core.multiarray._reconstruct``. ``_py2_pickle`` writes exactly that.
"""
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lamaml.data import cifar100
from lamaml.data.cifar100 import ARCHIVE, ROOT, load_cifar100
from lamaml.errors import DataError

N_TRAIN, N_TEST = 30, 10


class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 str (BINSTRING), as the official files have them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        short = len(raw) < 256
        size = bytes([len(raw)]) if short else struct.pack("<i", len(raw))
        self.write((pickle.SHORT_BINSTRING if short else pickle.BINSTRING) + size + raw)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_py2_str


def _py2_pickle(record) -> bytes:
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(record)
    # numpy 2 names its reconstructor numpy._core; Python 2 numpy wrote numpy.core
    return out.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _split(n: int, seed: int, batch_label: str) -> dict:
    rng = np.random.default_rng(seed)
    labels = [int(k) for k in rng.integers(0, 100, n)]
    labels[:2] = [0, 99]                                   # both ends of the label range
    return {"batch_label": batch_label, "coarse_labels": [k // 5 for k in labels],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),   # every pixel tells where it came from
            "filenames": [f"image_{seed}_{i}.png" for i in range(n)], "fine_labels": labels}


def _official_records() -> dict:
    return {"train": _split(N_TRAIN, 1, "training batch 1 of 1"), "test": _split(N_TEST, 2, "testing batch 1 of 1"),
            "meta": {"fine_label_names": [f"class_{k:02d}" for k in range(100)],
                     "coarse_label_names": [f"super_{k:02d}" for k in range(20)]}}


def _write_folder(data_dir: Path, files: dict[str, bytes]) -> Path:
    (data_dir / ROOT).mkdir(parents=True)
    for name, content in files.items():
        (data_dir / ROOT / name).write_bytes(content)
    return data_dir


def _write_archive(data_dir: Path, files: dict[str, bytes], extra=()) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(data_dir / ARCHIVE, "w:gz") as tar:
        folder = tarfile.TarInfo(ROOT)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, content in [*extra, *((f"{ROOT}/{n}", c) for n, c in files.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return data_dir / ARCHIVE


@pytest.fixture
def records():
    return _official_records()


@pytest.fixture
def files(records):
    return {name: _py2_pickle(record) for name, record in records.items()}


@pytest.fixture
def trusted(monkeypatch):
    """Make the loader's table of official md5s accept the given small files."""
    def trust(name: str, content: bytes):
        monkeypatch.setitem(cifar100.MD5, name, hashlib.md5(content).hexdigest())
    return trust


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _one_line_error(data_dir: Path, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        load_cifar100(data_dir, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------------- reading

def test_the_folder_and_the_archive_give_identical_tensors_in_chw_layout(tmp_path, records, files, trusted):
    folder_dir = _write_folder(tmp_path / "unpacked", files)
    archive = _write_archive(tmp_path / "packed", files)
    for name, content in files.items():
        trusted(name, content)
    trusted(ARCHIVE, archive.read_bytes())
    from_folder = load_cifar100(folder_dir, allow_download=False)        # md5s checked, and they hold
    from_archive = load_cifar100(archive.parent, allow_download=False)
    for split, count in (("train", N_TRAIN), ("test", N_TEST)):
        data, labels = records[split]["data"], records[split]["fine_labels"]
        images = getattr(from_folder, f"{split}_images")
        assert images.shape == (count, 3, 32, 32) and images.dtype == torch.uint8
        assert getattr(from_folder, f"{split}_labels").dtype == torch.int64
        assert getattr(from_folder, f"{split}_labels").tolist() == labels
        assert torch.equal(images, getattr(from_archive, f"{split}_images"))
        assert torch.equal(getattr(from_folder, f"{split}_labels"), getattr(from_archive, f"{split}_labels"))
        for i, c, y, x in [(0, 0, 0, 0), (1, 0, 0, 31), (2, 1, 5, 7), (count - 1, 2, 31, 0), (3, 2, 17, 29)]:
            assert images[i, c, y, x] == data[i, c * 1024 + y * 32 + x]
        assert np.array_equal(images.reshape(count, -1).numpy(), data)
    assert from_folder.classes == from_archive.classes == tuple(f"class_{k:02d}" for k in range(100))


def test_an_incomplete_folder_gives_way_to_the_archive(tmp_path, files):
    _write_folder(tmp_path, {"train": files["train"]})
    _write_archive(tmp_path, files)
    loaded = load_cifar100(tmp_path, allow_download=False, verify_checksums=False)
    assert loaded.test_images.shape == (N_TEST, 3, 32, 32)


# ------------------------------------------------------------------------------------ checksums

def test_an_archive_with_a_flipped_byte_is_refused_as_corrupt(tmp_path, files, trusted):
    archive = _write_archive(tmp_path, files)
    for name, content in files.items():
        trusted(name, content)
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    message = _one_line_error(tmp_path, allow_download=False)
    assert message.startswith(str(archive)) and "corrupt" in message and "download it again" in message


def test_an_archive_packed_again_passes_by_the_md5_of_its_files(tmp_path, files, trusted):
    for name, content in files.items():
        trusted(name, content)          # the official archive's md5 stays the real one: this copy is not it
    archive = _write_archive(tmp_path, files)
    assert hashlib.md5(archive.read_bytes()).hexdigest() != cifar100.MD5[ARCHIVE]
    assert load_cifar100(tmp_path, allow_download=False).train_images.shape == (N_TRAIN, 3, 32, 32)


def test_one_changed_byte_in_an_archived_file_is_refused_naming_the_file_and_both_md5s(tmp_path, files, trusted):
    for name, content in files.items():
        trusted(name, content)
    changed = bytearray(files["train"])
    changed[-100] ^= 0x01           # one pixel byte: the pickle still loads
    archive = _write_archive(tmp_path, {**files, "train": bytes(changed)})
    message = _one_line_error(tmp_path, allow_download=False)
    assert message.startswith(f"{archive}:{ROOT}/train is corrupt: its md5 is {hashlib.md5(changed).hexdigest()}, "
                              f"the official file's is {cifar100.MD5['train']}")
    assert message.endswith("delete the archive and download it again")


def test_an_unpacked_file_that_is_not_the_official_one_is_named_by_its_md5(tmp_path, files):
    _write_folder(tmp_path, files)                        # our small files, the real md5s
    message = _one_line_error(tmp_path, allow_download=False)
    assert str(tmp_path / ROOT / "train") in message and "md5" in message
    assert cifar100.MD5["train"] in message


def test_an_archive_that_is_not_a_tar_is_reported_as_corrupt(tmp_path):
    tmp_path.joinpath(ARCHIVE).write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    message = _one_line_error(tmp_path, allow_download=False, verify_checksums=False)
    assert str(tmp_path / ARCHIVE) in message and "corrupt" in message


# ------------------------------------------------------------------------------------- security

@pytest.mark.parametrize("source", ["folder", "archive"])
def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path, files, source):
    marker = tmp_path / "pwned"
    files["train"] = pickle.dumps({b"data": Exploit(marker), b"fine_labels": [0]}, protocol=2)
    (_write_folder if source == "folder" else _write_archive)(tmp_path / "data", files)
    message = _one_line_error(tmp_path / "data", allow_download=False, verify_checksums=False)
    assert "train" in message and "system" in message and "refusing" in message
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", f"{ROOT}/../../evil", "./../evil"])
def test_an_archive_member_with_an_absolute_or_dotdot_name_is_refused(tmp_path, files, name):
    data_dir = tmp_path / "deep" / "data"
    _write_archive(data_dir, files, extra=[(name, b"evil")])
    before = sorted(tmp_path.rglob("*"))
    message = _one_line_error(data_dir, allow_download=False, verify_checksums=False)
    assert repr(name) in message and "refusing" in message
    assert sorted(tmp_path.rglob("*")) == before and not Path("/abs/evil").exists()


# ------------------------------------------------------------------------------- missing, download

@pytest.mark.parametrize("downloads", ["env off", "argument off"])
def test_missing_data_with_downloads_off_names_both_places_looked(tmp_path, monkeypatch, downloads):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    if downloads == "argument off":
        monkeypatch.delenv("LAMAML_NO_DOWNLOAD")
    message = _one_line_error(tmp_path, allow_download=downloads == "env off")
    assert f"looked for {tmp_path / ROOT}/ and {tmp_path / ARCHIVE}" in message
    assert "cifar.html" in message and ARCHIVE in message


def test_a_partly_unpacked_folder_is_named_with_what_it_lacks(tmp_path, files):
    _write_folder(tmp_path, {"train": files["train"], "test": files["test"]})
    message = _one_line_error(tmp_path, allow_download=False)
    assert "lacks meta" in message and str(tmp_path / ARCHIVE) in message


def test_the_archive_is_downloaded_when_nothing_is_there(tmp_path, monkeypatch, files, trusted):
    archive_bytes = _write_archive(tmp_path / "server", files).read_bytes()
    trusted(ARCHIVE, archive_bytes)
    monkeypatch.delenv("LAMAML_NO_DOWNLOAD")
    asked = []
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: asked.append(url) or io.BytesIO(archive_bytes))
    loaded = load_cifar100(tmp_path / "data")
    assert asked == [cifar100.URL] and (tmp_path / "data" / ARCHIVE).read_bytes() == archive_bytes
    assert loaded.train_images.shape == (N_TRAIN, 3, 32, 32)


def test_a_corrupt_download_leaves_no_file_behind(tmp_path, monkeypatch, files):
    archive_bytes = _write_archive(tmp_path / "server", files).read_bytes()   # md5 is not the official one
    monkeypatch.delenv("LAMAML_NO_DOWNLOAD")
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: io.BytesIO(archive_bytes))
    message = _one_line_error(tmp_path / "data")
    assert "download failed" in message and "md5" in message and "cifar.html" in message
    assert list(tmp_path.iterdir()) == [tmp_path / "server"]       # no file, no empty data folder


# -------------------------------------------------------------------------------------- content

def _bad(records, split, key, value):
    records[split][key] = value


@pytest.mark.parametrize("file, corrupt, expected", [
    ("test", lambda r: _bad(r, "test", "data", np.zeros((10, 3000), np.uint8)),
     r"data has shape \(10, 3000\), expected \(N, 3072\)"),
    ("train", lambda r: _bad(r, "train", "data", np.zeros((N_TRAIN, 3, 32, 32), np.uint8)),
     r"shape \(30, 3, 32, 32\)"),
    ("train", lambda r: _bad(r, "train", "data", np.zeros((N_TRAIN, 3072), np.int64)), "dtype int64, expected a uint8"),
    ("train", lambda r: r["train"]["fine_labels"].__setitem__(5, 100), r"run from 0 to 100, expected 0\.\.99"),
    ("test", lambda r: r["test"]["fine_labels"].__setitem__(5, -1), r"run from -1 to 99"),
    ("test", lambda r: r["test"]["fine_labels"].pop(), "9 fine_labels for 10 images"),
    ("train", lambda r: r["train"]["fine_labels"].__setitem__(0, "cat"), "not a flat list of integers"),
    ("train", lambda r: r["train"].pop("fine_labels"), "has no fine_labels"),
    ("meta", lambda r: r["meta"]["fine_label_names"].pop(), "not 100 names"),
])
def test_malformed_content_is_refused_naming_the_file(tmp_path, records, file, corrupt, expected):
    corrupt(records)
    _write_folder(tmp_path, {name: _py2_pickle(record) for name, record in records.items()})
    with pytest.raises(DataError, match=expected) as caught:
        load_cifar100(tmp_path, allow_download=False, verify_checksums=False)
    assert str(caught.value).startswith(str(tmp_path / ROOT / file))
