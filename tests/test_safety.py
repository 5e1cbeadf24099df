"""Untrusted files never run code and never write outside their folder."""
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import yaml

from lamaml.data.safety import extract_tar, load_restricted_pickle, safe_member_path
from lamaml.errors import DataError


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_cifar_format_pickle_loads():
    record = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"fine_labels": [3, 7],
              b"filenames": [b"a.png", b"b.png"]}
    for protocol in (2, 4):
        loaded = load_restricted_pickle(pickle.dumps(record, protocol=protocol), "train")
        assert loaded[b"fine_labels"] == [3, 7] and loaded[b"data"].dtype == np.uint8
        np.testing.assert_array_equal(loaded[b"data"], record[b"data"])


def test_a_pickle_whose_payload_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": Exploit(marker)})
    with pytest.raises(DataError, match="refers to posix.system|refers to os.system"):
        load_restricted_pickle(payload, "cifar-100-python/train")
    assert not marker.exists()


def test_a_truncated_pickle_is_reported_as_corrupt():
    with pytest.raises(DataError, match="is corrupt: cannot unpickle"):
        load_restricted_pickle(pickle.dumps({b"x": [1, 2, 3]})[:-4], "meta")


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "a/b/../../../evil"])
def test_archive_members_that_escape_are_refused(name, tmp_path):
    with pytest.raises(DataError, match="refusing to extract"):
        safe_member_path(tmp_path / "target", name)


def test_extracting_a_tar_with_a_dotdot_member_writes_nothing_outside(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in [("cifar-100-python/meta", b"ok"), ("../outside.txt", b"evil")]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    target = tmp_path / "target"
    with pytest.raises(DataError, match="outside"):
        extract_tar(archive, target)
    assert not (tmp_path / "outside.txt").exists() and not target.exists()


def test_extracting_a_tar_with_a_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("cifar-100-python/train")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="link or device"):
        extract_tar(archive, tmp_path / "target")


def test_a_good_tar_extracts(tmp_path):
    archive = tmp_path / "good.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    extract_tar(archive, tmp_path / "t")
    assert (tmp_path / "t" / "cifar-100-python" / "meta").read_bytes() == b"ok"


def test_presets_are_read_with_a_safe_yaml_loader():
    from lamaml.config.schema import parse_value
    assert parse_value("!!python/object/apply:os.system ['true']") == "!!python/object/apply:os.system ['true']"
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("!!python/object/apply:os.system ['true']")
