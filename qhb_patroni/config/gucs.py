"""Server parameters that Patroni passes on the command line ("cmdline" GUCs, 7.2).

Local values of these are ignored; dynamic values are kept only when they pass
the check, otherwise the default stays. listen_addresses, port and
cluster_name have no default here: they come from postgresql.listen and scope.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .checks import parse_bool


def _never(_value: Any) -> bool:
    return False


def _int_at_least(minimum: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, bool):
            return False
        try:
            return int(str(value).strip()) >= minimum
        except ValueError:
            return False

    return check


def _is_bool(value: Any) -> bool:
    return parse_bool(value) is not None


def _wal_level(value: Any) -> bool:
    return str(value).lower() in ("hot_standby", "replica", "logical")


_SIZE = re.compile(r"^\s*(\d+)\s*(kB|MB|GB|TB)?\s*$")
_SIZE_MB = {None: 1.0, "kB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0 * 1024}


def size_in_mb(value: Any) -> Optional[float]:
    """'128MB' / '1GB' / 512 (MB) -> megabytes; None if not a size."""
    match = _SIZE.match(str(value))
    if not match:
        return None
    return int(match.group(1)) * _SIZE_MB[match.group(2)]


def _wal_keep_size(value: Any) -> bool:
    size = size_in_mb(value)
    return size is not None and size >= 16


# name -> (default or None, check of a dynamic value, on the command line)
CMDLINE_GUCS: Dict[str, Tuple[Any, Callable[[Any], bool], bool]] = {
    "listen_addresses": (None, _never, True),
    "port": (None, _never, True),
    "cluster_name": (None, _never, True),
    "wal_level": ("hot_standby", _wal_level, True),
    "hot_standby": ("on", _never, True),
    "max_connections": (100, _int_at_least(25), True),
    "max_wal_senders": (10, _int_at_least(3), True),
    "wal_keep_segments": (8, _int_at_least(1), False),
    "wal_keep_size": ("128MB", _wal_keep_size, False),
    "max_prepared_transactions": (0, _int_at_least(0), True),
    "max_locks_per_transaction": (64, _int_at_least(32), True),
    "track_commit_timestamp": ("off", _is_bool, True),
    "max_replication_slots": (10, _int_at_least(4), True),
    "max_worker_processes": (8, _int_at_least(2), True),
    "wal_log_hints": ("on", _never, True),
}


def default_parameters() -> Dict[str, Any]:
    """The parameters every effective configuration starts from."""
    return {name: default for name, (default, _check, _cmd) in CMDLINE_GUCS.items()
            if default is not None and name not in ("wal_keep_segments", "wal_keep_size")}


def accepted_parameters(parameters: Optional[Mapping[str, Any]], local: bool) -> Dict[str, Any]:
    """Parameters of one layer, names lower-cased: cmdline GUCs are dropped from
    the local layer and kept from the dynamic layer only when valid."""
    out: Dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        key = str(name).lower()
        guc = CMDLINE_GUCS.get(key)
        if guc is None or (not local and guc[1](value)):
            out[key] = value
    return out
