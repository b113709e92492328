"""manager/durable.py: which kernels' syncfs may replace the tools' fsync of every file,
and which directories a new data directory's flush covers."""
from __future__ import annotations

import os
from pathlib import Path

from qhb_patroni.manager import durable


def test_syncfs_reports_errors_from_linux_5_8() -> None:
    assert durable.kernel_reports_errors("5.8.0-63-generic")
    assert durable.kernel_reports_errors("6.18.44-fc-v1272")
    assert durable.kernel_reports_errors("10.0.1")
    assert not durable.kernel_reports_errors("5.4.0-150-generic")
    assert not durable.kernel_reports_errors("4.19.0")
    assert not durable.kernel_reports_errors("unknown")


def test_locations_follow_the_wal_and_tablespace_links_once_per_file_system(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wal = tmp_path / "elsewhere" / "wal"
    wal.mkdir(parents=True)
    (data / "pg_tblspc").mkdir(parents=True)
    os.symlink(wal, data / "pg_wal")
    os.symlink(tmp_path / "ts", data / "pg_tblspc" / "16384")  # dangling: skipped
    # Everything here is on one file system: one syncfs of the data directory covers it.
    assert durable.locations(str(data)) == [os.path.realpath(data)]


def test_flush_of_a_data_directory(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(b"\0" * 8192)
    if durable.usable():
        durable.flush(str(tmp_path))  # raises OSError on failure


def test_a_tool_without_no_sync_keeps_its_own_sync(tmp_path: Path) -> None:
    old = tmp_path / "old_tool"
    old.write_text("#!/bin/sh\necho '  -N, --nosync   do not wait'\n")
    new = tmp_path / "new_tool"
    new.write_text("#!/bin/sh\necho '  -N, --no-sync  do not wait for changes to be written safely to disk'\n")
    for tool in (old, new):
        tool.chmod(0o755)
    assert not durable.tool_has_no_sync(str(old))
    assert durable.tool_has_no_sync(str(new))
    assert not durable.tool_has_no_sync(str(tmp_path / "missing"))
