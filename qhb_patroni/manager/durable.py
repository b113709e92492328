"""Making a new data directory durable with one syncfs(2) per file system.

initdb and the base backup tool end by fsyncing every file they wrote, one by one
(~1,000 files for an empty cluster).  On this kind of storage each fsync is a cache
flush of the device: 0.1-0.25 s in all, where one syncfs of the file system writes the
same data in 0.05-0.07 s (measured on the bench machine; docs/bench-bootstrap-idle.md).
So the tools run with --no-sync and the caller flushes the file systems holding the
data directory, its WAL directory and its tablespaces before it returns: nothing
claims to be a cluster (a bootstrapped leader, a cloned replica) before its files are
on disk, exactly as when the tool synced them itself.

syncfs reports write-back errors only since Linux 5.8; elsewhere (or when the call is
missing) `usable()` says no and the tools sync file by file as before.  So they do when
a tool does not list --no-sync in its --help (PostgreSQL's initdb has it since 9.3, the
base backup tool since 10; QHB's are expected to keep it, but that is checked, not assumed).
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from typing import Callable, List, Optional, Tuple, cast

from .names import TABLESPACE_DIR, WAL_DIR
from .process import clean_env

_MIN_KERNEL = (5, 8)


def _kernel(release: str) -> Optional[Tuple[int, int]]:
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


def kernel_reports_errors(release: str) -> bool:
    """A Linux release whose syncfs returns write-back errors (5.8 or later)."""
    version = _kernel(release)
    return version is not None and version >= _MIN_KERNEL


def _syncfs() -> Optional[Callable[[int], int]]:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return cast(Callable[[int], int], libc.syncfs)
    except (OSError, AttributeError):
        return None


def usable() -> bool:
    """syncfs can stand in for the tools' own fsync of every file here."""
    return sys.platform.startswith("linux") and kernel_reports_errors(os.uname().release) and _syncfs() is not None


def tool_has_no_sync(binary: str) -> bool:
    """`binary --help` lists --no-sync."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, timeout=10, env=clean_env(),
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--no-sync" in out


def locations(data_dir: str) -> List[str]:
    """The directories to flush: the data directory, where its pg_wal link points and
    where each pg_tblspc link points (one per distinct device is enough)."""
    paths = [os.path.realpath(data_dir), os.path.realpath(os.path.join(data_dir, WAL_DIR))]
    tablespaces = os.path.join(data_dir, TABLESPACE_DIR)
    try:
        entries = sorted(os.listdir(tablespaces))
    except OSError:
        entries = []
    paths += [os.path.realpath(os.path.join(tablespaces, entry)) for entry in entries]
    result: List[str] = []
    devices = set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
        except OSError:
            continue  # no pg_wal yet, a dangling tablespace link: nothing of ours there
        if device not in devices:
            devices.add(device)
            result.append(path)
    return result


def flush(data_dir: str) -> None:
    """syncfs(2) of every file system holding part of `data_dir`; OSError on failure."""
    call = _syncfs()
    if call is None:
        raise OSError("syncfs is not available")
    for path in locations(data_dir):
        fd = os.open(path, os.O_RDONLY)
        try:
            if call(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of {path}: {os.strerror(err)}")
        finally:
            os.close(fd)
