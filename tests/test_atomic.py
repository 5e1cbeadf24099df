"""lamaml.atomic: a file appears whole under its name or not at all, and a failed write keeps the old one."""
import json
import os

import pytest

from lamaml.atomic import atomic_open, atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic


def test_each_writer_creates_missing_folders_and_leaves_only_the_target(tmp_path):
    write_text_atomic(tmp_path / "a" / "t.md", "text\n")
    write_bytes_atomic(tmp_path / "b" / "x.bin", b"\x00\xff")
    write_json_atomic(tmp_path / "c" / "m.json", {"ra": 1.5})
    assert (tmp_path / "a" / "t.md").read_text() == "text\n"
    assert (tmp_path / "b" / "x.bin").read_bytes() == b"\x00\xff"
    assert (tmp_path / "c" / "m.json").read_text() == '{\n  "ra": 1.5\n}\n'
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["m.json", "t.md", "x.bin"]


def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"old": True})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"new": object()})       # json.dump fails after writing part of it
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_path_keeps_the_suffix_a_writer_picks_its_format_by(tmp_path):
    with atomic_path(tmp_path / "figure.png", suffix=".tmp.png") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".figure.png.") and tmp.name.endswith(".tmp.png")
        assert tmp.exists() and not (tmp_path / "figure.png").exists()
        tmp.write_bytes(b"png")
    assert (tmp_path / "figure.png").read_bytes() == b"png" and not tmp.exists()


def test_before_replace_runs_once_the_new_file_is_complete_and_before_it_takes_the_name(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    seen = []

    def keep_previous():
        seen.append((target.read_bytes(), sorted(p.name for p in tmp_path.iterdir())))
        os.replace(target, tmp_path / "checkpoint.prev.pt")
    with atomic_open(target, "wb", before_replace=keep_previous) as handle:
        handle.write(b"new")
    assert seen[0][0] == b"old" and len(seen[0][1]) == 2       # the target and the complete temporary
    assert target.read_bytes() == b"new" and (tmp_path / "checkpoint.prev.pt").read_bytes() == b"old"


def test_new_files_get_the_permissions_open_would_give_them(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.md", "x")
        open(tmp_path / "plain.md", "w").close()
    finally:
        os.umask(umask)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == (tmp_path / "plain.md").stat().st_mode & 0o777 == 0o644


def test_atomic_open_refuses_modes_that_would_not_write_a_whole_file(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "ab"):
            pass
    assert list(tmp_path.iterdir()) == []
