"""Checks of a configuration against this machine, for --validate-config only
(the daemon itself reports such problems when it meets them).

Directories and executables are checked; network reachability and
ports in use are not (a running node would fail them)."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping

from ..manager.names import BINARY_ROLES, PG_VERSION, WAL_DIR, resolve_binaries
from .errors import KeyPath, Problem

Origin = Callable[[KeyPath], str]

# Roles whose executable must exist in bin_dir (Patroni 3.0.2 checks the same set).
REQUIRED_ROLES = ("server", "ctl", "initdb", "controldata", "basebackup", "isready")


def _data_dir_problems(data_dir: str, origin: Origin) -> List[Problem]:
    path: KeyPath = ("postgresql", "data_dir")
    where = origin(path)
    if not os.path.exists(data_dir):
        # Created by the bootstrap or the first clone: the nearest existing
        # ancestor must be a directory this user can write into.
        parent = os.path.dirname(os.path.abspath(data_dir))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            return [Problem(where, path, f"cannot create {data_dir}: {parent} is not a directory")]
        if not os.access(parent, os.W_OK | os.X_OK):
            return [Problem(where, path, f"cannot create {data_dir}: {parent} is not writable")]
        return []
    if os.path.isdir(data_dir) and not os.access(data_dir, os.W_OK | os.X_OK):
        return [Problem(where, path, f"{data_dir} is not writable")]
    if not os.path.isdir(data_dir):
        return [Problem(where, path, f"{data_dir} is not a directory")]
    try:
        entries = os.listdir(data_dir)
    except OSError as exc:
        return [Problem(where, path, f"{data_dir}: {(exc.strerror or str(exc)).lower()}")]
    if not entries:
        return []
    if PG_VERSION not in entries:
        return [Problem(where, path, f"{data_dir} is not empty and has no {PG_VERSION}: not a data directory")]
    if not os.path.isdir(os.path.join(data_dir, WAL_DIR)):
        return [Problem(where, path, f"{data_dir} has no {WAL_DIR} directory")]
    return []


def _bin_dir_problems(pg: Mapping[str, Any], origin: Origin) -> List[Problem]:
    bin_dir = pg.get("bin_dir")
    path: KeyPath = ("postgresql", "bin_dir")
    names = pg.get("bin_name")
    overrides = names if isinstance(names, Mapping) else None
    if not isinstance(bin_dir, str) or not bin_dir:
        # Without bin_dir the executables are looked up on PATH.
        binaries = resolve_binaries("", overrides)
        return [Problem(origin(path), path,
                        f"not set and no executable for {role} on PATH ({' or '.join(BINARY_ROLES[role])})")
                for role in REQUIRED_ROLES if not os.path.isabs(binaries[role])]
    if not os.path.isdir(bin_dir):
        return [Problem(origin(path), path, f"directory {bin_dir} does not exist")]
    binaries = resolve_binaries(bin_dir, overrides)
    problems = []
    for role in REQUIRED_ROLES:
        exe = binaries[role]
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            problems.append(Problem(origin(path), path, f"no executable for {role} ({exe})"))
    return problems


def system_problems(config: Dict[str, Any], origin: Origin) -> List[Problem]:
    """Problems of an otherwise valid local configuration on this machine."""
    pg = config.get("postgresql")
    if not isinstance(pg, Mapping):
        return []
    problems: List[Problem] = []
    data_dir = pg.get("data_dir")
    if isinstance(data_dir, str) and data_dir:
        problems += _data_dir_problems(data_dir, origin)
    problems += _bin_dir_problems(pg, origin)
    for key in ("config_dir",):
        value = pg.get(key)
        if isinstance(value, str) and value and os.path.exists(value) and not os.path.isdir(value):
            problems.append(Problem(origin(("postgresql", key)), ("postgresql", key), f"{value} is not a directory"))
    pgpass = pg.get("pgpass")
    if isinstance(pgpass, str) and pgpass and os.path.isdir(os.path.expanduser(pgpass)):
        problems.append(Problem(origin(("postgresql", "pgpass")), ("postgresql", "pgpass"),
                                f"{pgpass} is a directory"))
    return problems
