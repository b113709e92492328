"""Removing a data directory, and nothing else.

What may be deleted: the entries of the data directory, the entries of the
directory its `pg_wal` symlink points to (the WAL location the server itself
declares), and, in each tablespace location its `pg_tblspc` links point to, the
server's own `PG_<major>_<catalog version>` directory.  Everything is checked
before anything is deleted: a location that is the file-system root, a system
directory, the home directory, an ancestor of the data directory, or that does
not look like what it should be (a data directory holding something else, a
WAL target holding files that are not WAL) is refused with a ManagerError and
nothing at all is removed.  A symlinked data directory stays a symlink: its
target is emptied.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from . import names
from .settings import ManagerError

log = logging.getLogger(__name__)

_SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/bin", "/usr/lib",
    "/usr/local", "/usr/sbin", "/usr/share", "/var/lib", "/var/log", "/var/tmp",
})
_WAL_ENTRY = re.compile(names.WAL_ENTRY_PATTERN)
# A file system's own directory when a location is a mount point: never ours to delete
# (root owns it), and not a sign that the location is something else.
_LOST_FOUND = names.LOST_FOUND


@dataclass
class RemovalPlan:
    """What remove_data_directory will delete (computed and checked first)."""

    data_dir: str  # the directory whose entries go (the symlink's target for a symlink)
    wal_dir: Optional[str] = None  # a pg_wal symlink target outside data_dir: its entries go
    tablespace_dirs: List[str] = field(default_factory=list)  # PG_<major>_* directories to delete


def _inside(path: str, parent: str) -> bool:
    """`path` is `parent` or below it (both real, absolute)."""
    return os.path.commonpath([path, parent]) == parent


def _refuse_location(path: str, what: str, protected: Sequence[str]) -> None:
    if path in _SYSTEM_DIRS or path == os.path.realpath(os.path.expanduser("~")):
        raise ManagerError(f"refusing to delete the {what} {path}: it is a system or home directory")
    for other in protected:
        if _inside(other, path):
            raise ManagerError(f"refusing to delete the {what} {path}: it contains {other}")


def _entries(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise ManagerError(f"cannot read {path}: {exc.strerror or exc}") from None


def _looks_like_data_dir(real: str) -> bool:
    meaningful = [e for e in _entries(real) if not e.startswith(".") and e != _LOST_FOUND]
    return not meaningful or any(e in names.DATA_DIR_MARKERS or e.endswith(".conf") for e in meaningful)


def _major(real: str) -> Optional[int]:
    try:
        with open(os.path.join(real, names.PG_VERSION), encoding="utf-8") as f:
            return int(f.read().strip().split(".")[0])
    except (OSError, ValueError):
        return None


def _wal_target(real: str, protected: Sequence[str]) -> Optional[str]:
    link = os.path.join(real, names.WAL_DIR)
    if not os.path.islink(link):
        return None
    target = os.path.realpath(link)
    if not os.path.isdir(target) or _inside(target, real):
        return None  # dangling (the link goes with the data directory) or inside it anyway
    _refuse_location(target, "WAL directory", protected)
    strangers = [e for e in _entries(target) if not _WAL_ENTRY.fullmatch(e) and e != _LOST_FOUND]
    if strangers:
        raise ManagerError(f"refusing to delete the WAL directory {target} ({link} points there): it holds "
                           f"{', '.join(strangers[:3])}{' ...' if len(strangers) > 3 else ''}, which is not WAL")
    return target


def _tablespace_dirs(real: str, protected: Sequence[str]) -> List[str]:
    links = os.path.join(real, names.TABLESPACE_DIR)
    if not os.path.isdir(links) or os.path.islink(links):
        return []
    found: List[str] = []
    major = _major(real)
    for oid in _entries(links):
        link = os.path.join(links, oid)
        location = os.path.realpath(link)
        if not os.path.islink(link) or not os.path.isdir(location) or _inside(location, real):
            continue  # an in-place tablespace goes with the data directory
        _refuse_location(location, "tablespace location", protected)
        if major is None:
            log.warning("not cleaning tablespace location %s: the server version is unknown", location)
            continue
        mine = re.compile(names.TABLESPACE_VERSION_DIR.format(major=major))
        found += [os.path.join(location, e) for e in _entries(location) if mine.fullmatch(e)]
    return found


def plan_removal(data_dir: str, ours: bool = False) -> Optional[RemovalPlan]:
    """Check everything remove_data_directory would delete; None when there is no
    data directory.  Raises ManagerError (nothing deleted) when anything is unsafe.
    `ours`: the content was written by our own clone or bootstrap into a directory that
    was empty, so it need not look like a data directory yet (the location checks hold)."""
    if not os.path.lexists(data_dir):
        return None
    configured = os.path.abspath(data_dir)
    real = os.path.realpath(data_dir)
    if not os.path.isdir(real):
        if os.path.islink(data_dir):
            raise ManagerError(f"data directory {data_dir} is a symlink to {real}, which is not a directory")
        raise ManagerError(f"data directory {data_dir} is not a directory: refusing to delete it")
    parent = os.path.realpath(os.path.dirname(configured))
    _refuse_location(real, "data directory", [parent] if real != configured else [])
    if not ours and not _looks_like_data_dir(real):
        raise ManagerError(f"refusing to empty {real}: it does not look like a data directory "
                           f"(none of {', '.join(names.DATA_DIR_MARKERS[:4])} ... in it)")
    protected = sorted({configured, real})
    return RemovalPlan(real, _wal_target(real, protected), _tablespace_dirs(real, protected))


def _delete(path: str) -> None:
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ManagerError(f"could not remove {path}: {exc.strerror or exc}") from None


def remove_data_directory(data_dir: str, ours: bool = False) -> None:
    """Delete the data directory's content, its WAL symlink target's content and
    its tablespaces' version directories (see the module docstring; `ours`: plan_removal)."""
    plan = plan_removal(data_dir, ours)
    if plan is None:
        return
    if plan.wal_dir is not None:
        log.info("removing the WAL files in %s", plan.wal_dir)
        for entry in _entries(plan.wal_dir):
            if entry != _LOST_FOUND:
                _delete(os.path.join(plan.wal_dir, entry))
    for path in plan.tablespace_dirs:
        log.info("removing tablespace directory %s", path)
        _delete(path)
    for entry in _entries(plan.data_dir):
        if entry != _LOST_FOUND:
            _delete(os.path.join(plan.data_dir, entry))


def empty_directory(data_dir: str, ours: bool = False) -> None:
    """Make sure data_dir exists, is empty and has mode 0700 (a symlink stays one)."""
    if os.path.lexists(data_dir):
        remove_data_directory(data_dir, ours)
    if os.path.islink(data_dir) and not os.path.isdir(data_dir):
        raise ManagerError(f"data directory {data_dir} is a symlink to {os.path.realpath(data_dir)}, "
                           "which does not exist")
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    os.chmod(data_dir, 0o700)


def is_empty(data_dir: str) -> bool:
    """No data directory yet, or one without meaningful entries."""
    real = os.path.realpath(data_dir)
    if not os.path.isdir(real):
        return not os.path.lexists(data_dir)
    return not [e for e in _entries(real) if not e.startswith(".") and e != _LOST_FOUND]
