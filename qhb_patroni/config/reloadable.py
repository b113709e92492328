"""Which local settings a reload (SIGHUP, POST /reload) cannot apply.

The daemon reads these once at start: the DCS connection, where the data directory and
its files are, and which executables it runs.  A reload keeps the running values and says
which keys wait for a restart of qhb-patroni, instead of ignoring them silently.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Tuple

RESTART_ONLY: Tuple[Tuple[str, ...], ...] = (
    ("namespace",),
    ("etcd",),
    ("etcd3",),
    ("consul",),
    ("postgresql", "data_dir"),
    ("postgresql", "config_dir"),
    ("postgresql", "config_base_name"),
    ("postgresql", "hba_file"),
    ("postgresql", "ident_file"),
    ("postgresql", "bin_dir"),
    ("postgresql", "bin_name"),
)

_MISSING = object()


def _get(config: Mapping[str, Any], path: Tuple[str, ...]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def restart_only_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """Dotted names of the restart-only keys whose value differs between two local configs."""
    return [".".join(path) for path in RESTART_ONLY if _get(old, path) != _get(new, path)]
