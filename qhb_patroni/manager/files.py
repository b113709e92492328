"""File-system helpers: atomic writes, pgpass, data directory state and removal."""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
from typing import Any, List, Optional, Sequence, Tuple

from ..core.local import DATA_EMPTY, DATA_INACCESSIBLE, DATA_PRESENT
from .conffiles import parse_history, pgpass_line
from .names import LOST_FOUND, Layout
from .settings import ManagerError

# Re-exported: the removal lives in wipe.py.
from .wipe import empty_directory as empty_directory
from .wipe import remove_data_directory as remove_data_directory


def write_file(path: str, text: str, mode: int = 0o600) -> None:
    """Write atomically (temp file + rename) with the given permissions."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


PgpassEntry = Tuple[Optional[str], Optional[int], Optional[str], Optional[str]]


def write_pgpass(path: str, entries: Sequence[PgpassEntry]) -> None:
    """(host, port, user, password) entries, one line each, mode 0600."""
    if os.path.isdir(path):
        raise ManagerError(f"pgpass {path} is a directory")
    text = "".join(pgpass_line(*entry) + "\n" for entry in entries)
    write_file(path, text, 0o600)


def data_dir_state(data_dir: str) -> Tuple[str, Optional[str]]:
    """(state, error): empty (missing, or only dot-files / lost+found), present, inaccessible."""
    try:
        entries = os.listdir(data_dir)
    except FileNotFoundError:
        return DATA_EMPTY, None
    except OSError as exc:
        return DATA_INACCESSIBLE, str(exc)
    meaningful = [e for e in entries if not e.startswith(".") and e != LOST_FOUND]
    if not meaningful:
        return DATA_EMPTY, None
    if os.path.exists(os.path.join(data_dir, "global", "pg_control")):
        return DATA_PRESENT, None
    # Something is there but it is not a cluster: treat it as present so that
    # nothing is overwritten silently; the caller reports pg_control missing.
    return DATA_PRESENT, "global/pg_control is missing"


def major_version(layout: Layout) -> Optional[int]:
    try:
        with open(layout.pg_version) as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        return int(text.split(".")[0])
    except ValueError:
        return None


def local_history(layout: Layout, leader_name: str) -> List[List[Any]]:
    """Lines for /history from the newest local *.history file:
    [timeline, switch lsn, reason, iso timestamp of the switch, new leader]."""
    try:
        names = [n for n in os.listdir(layout.wal_dir) if n.endswith(".history")]
    except OSError:
        return []
    by_tli = {}
    for name in names:
        try:
            by_tli[int(name[:8], 16)] = os.path.join(layout.wal_dir, name)
        except ValueError:
            continue
    if not by_tli:
        return []
    newest = max(by_tli)
    try:
        with open(by_tli[newest]) as f:
            entries = parse_history(f.read())
    except OSError:
        return []
    result: List[List[Any]] = []
    for tli, lsn, reason in entries:
        line: List[Any] = [tli, lsn, reason]
        path = by_tli.get(tli + 1)
        if path is not None:
            stamp = _dt.datetime.fromtimestamp(os.stat(path).st_mtime, _dt.timezone.utc).astimezone()
            line.append(stamp.isoformat())
            if tli + 1 == newest:
                line.append(leader_name)
        result.append(line)
    return result
