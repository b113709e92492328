"""remove_data_directory on real directory trees (issue 12 item 7): it deletes
the data directory's content, its pg_wal symlink target's WAL and its
tablespaces' own version directories - nothing else - and refuses, deleting
nothing, what does not look right."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from qhb_patroni.manager.files import empty_directory, remove_data_directory
from qhb_patroni.manager.settings import ManagerError
from qhb_patroni.manager.wipe import is_empty, plan_removal

SEGMENT = "000000010000000000000001"


def tree(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def data_dir(path: Path, wal: Optional[Path] = None, tablespaces: Optional[Dict[str, Path]] = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "PG_VERSION").write_text("15\n")
    (path / "global").mkdir()
    (path / "global" / "pg_control").write_text("x")
    (path / "base" / "1").mkdir(parents=True)
    (path / "qhb.conf").write_text("x")
    if wal is None:
        (path / "pg_wal").mkdir()
        (path / "pg_wal" / SEGMENT).write_text("w")
    else:
        wal.mkdir(parents=True, exist_ok=True)
        (wal / SEGMENT).write_text("w")
        (wal / "00000002.history").write_text("h")
        (wal / "archive_status").mkdir()
        (wal / "archive_status" / (SEGMENT + ".done")).write_text("")
        os.symlink(wal, path / "pg_wal")
    (path / "pg_tblspc").mkdir()
    for oid, location in (tablespaces or {}).items():
        (location / "PG_15_202209061" / "16384").mkdir(parents=True)
        (location / "PG_14_202107181").mkdir()  # another major's (pg_upgrade): not ours
        os.symlink(location, path / "pg_tblspc" / oid)
    return path


def test_plain_data_directory_is_emptied_and_kept(tmp_path: Path) -> None:
    data = data_dir(tmp_path / "data")
    (tmp_path / "neighbour").write_text("keep")
    remove_data_directory(str(data))
    assert data.is_dir() and os.listdir(data) == []
    assert (tmp_path / "neighbour").read_text() == "keep"


def test_wal_symlink_target_loses_only_its_wal(tmp_path: Path) -> None:
    wal = tmp_path / "wal" / "node"
    data = data_dir(tmp_path / "data", wal=wal)
    (tmp_path / "wal" / "other").write_text("keep")
    (wal / "lost+found").mkdir()  # the WAL volume's mount point: fsck's directory stays
    (data / "lost+found").mkdir()
    remove_data_directory(str(data))
    assert os.listdir(data) == ["lost+found"] and wal.is_dir() and os.listdir(wal) == ["lost+found"]
    assert (tmp_path / "wal" / "other").read_text() == "keep"


def test_symlinked_data_dir_stays_a_symlink_and_its_target_is_emptied(tmp_path: Path) -> None:
    target = data_dir(tmp_path / "disk" / "data")
    link = tmp_path / "data"
    os.symlink(target, link)
    remove_data_directory(str(link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert os.listdir(target) == []
    empty_directory(str(link))  # what a clone does next: still the symlink, mode 0700
    assert link.is_symlink() and (os.stat(target).st_mode & 0o777) == 0o700


def test_tablespace_version_dirs_are_removed_the_locations_stay(tmp_path: Path) -> None:
    ts1, ts2 = tmp_path / "ts1", tmp_path / "ts2"
    ts1.mkdir()
    ts2.mkdir()
    (ts2 / "README").write_text("the admin's")
    data = data_dir(tmp_path / "data", tablespaces={"16400": ts1, "16401": ts2})
    remove_data_directory(str(data))
    assert os.listdir(data) == []
    assert tree(ts1) == ["PG_14_202107181"]
    assert tree(ts2) == ["PG_14_202107181", "README"]


@pytest.mark.parametrize("what", ["home", "etc", "ancestor"])
def test_wal_target_that_is_not_a_wal_directory_is_refused(tmp_path: Path, what: str) -> None:
    if what == "home":
        target = tmp_path / "home"
        target.mkdir()
        (target / ".bashrc").write_text("x")
        (target / "notes.txt").write_text("x")
        expected = "notes.txt, which is not WAL"
        data = data_dir(tmp_path / "data")
    elif what == "etc":
        target = Path("/etc")
        expected = "refusing to delete the WAL directory /etc: it is a system or home directory"
        data = data_dir(tmp_path / "data")
    else:
        target = tmp_path
        expected = f"refusing to delete the WAL directory {tmp_path}: it contains {tmp_path / 'data'}"
        data = data_dir(tmp_path / "data")
    (data / "pg_wal" / SEGMENT).unlink()
    (data / "pg_wal").rmdir()
    os.symlink(target, data / "pg_wal")
    before = tree(tmp_path)
    with pytest.raises(ManagerError) as info:
        remove_data_directory(str(data))
    assert expected in str(info.value)
    assert tree(tmp_path) == before  # nothing at all was deleted


def test_data_dir_pointing_at_root_or_an_ancestor_or_something_else_is_refused(tmp_path: Path) -> None:
    root_link = tmp_path / "root-data"
    os.symlink("/", root_link)
    with pytest.raises(ManagerError, match="refusing to delete the data directory /: it is a system"):
        remove_data_directory(str(root_link))
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "PG_VERSION").write_text("15")
    up = tmp_path / "a" / "b" / "data"
    os.symlink(tmp_path / "a", up)
    with pytest.raises(ManagerError, match="it contains"):
        remove_data_directory(str(up))
    stranger = tmp_path / "docs"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("years of work")
    with pytest.raises(ManagerError, match="does not look like a data directory"):
        remove_data_directory(str(stranger))
    assert (stranger / "thesis.tex").exists() and (tmp_path / "a" / "PG_VERSION").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ManagerError, match="is not a directory"):
        remove_data_directory(str(a_file))
    assert a_file.exists()


def test_missing_empty_and_dangling(tmp_path: Path) -> None:
    remove_data_directory(str(tmp_path / "missing"))  # nothing to do
    assert plan_removal(str(tmp_path / "missing")) is None
    (tmp_path / "empty").mkdir()
    remove_data_directory(str(tmp_path / "empty"))
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "unmounted" / "data", dangling)
    with pytest.raises(ManagerError, match="which is not a directory"):
        remove_data_directory(str(dangling))
    with pytest.raises(ManagerError, match="which is not a directory"):
        empty_directory(str(dangling))
    assert not (tmp_path / "unmounted").exists()  # never created on the wrong disk


def test_what_our_own_clone_left_in_an_empty_directory_may_be_cleared(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert is_empty(str(data))
    (data / "half").write_text("x")  # a failed replica method's leftovers
    with pytest.raises(ManagerError, match="does not look like a data directory"):
        remove_data_directory(str(data))
    remove_data_directory(str(data), ours=True)
    assert list(data.iterdir()) == []
    assert is_empty(str(tmp_path / "missing")) and not is_empty(str(tmp_path))
