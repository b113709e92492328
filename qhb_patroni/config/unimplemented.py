"""Keys a Patroni 3.0.2 configuration can hold that qhb-patroni accepts but does
not implement (house rule 10: implemented, or named in a warning).

`unimplemented(config)` names the ones present in a local configuration (its
bootstrap.dcs included) or in a dynamic one; the daemon logs them in ONE warning
line at start and --validate-config prints the same line. Remove a row when the
key gets implemented."""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

Present = Callable[[Any], bool]


def _set(value: Any) -> bool:
    return value is not None and value != "" and value != {} and value != []


# (where, path, present?, what qhb-patroni does instead). `where`: "local" = top of the
# local file only; "dynamic" = top of /config and of bootstrap.dcs.
ROWS: Tuple[Tuple[str, str, Present, str], ...] = (
    ("local", "citus", _set, "Citus groups are not supported"),
)


def _get(root: Any, path: str) -> Any:
    node = root
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def unimplemented(local: Optional[Mapping[str, Any]] = None,
                  dynamic: Optional[Mapping[str, Any]] = None) -> List[Tuple[str, str]]:
    """(path as written, what happens instead) for every unimplemented key present."""
    found: List[Tuple[str, str]] = []
    roots: List[Tuple[str, str, Any]] = []
    if local is not None:
        roots += [("local", "", local), ("dynamic", "bootstrap.dcs.", _get(local, "bootstrap.dcs"))]
        if isinstance(local.get("postgresql"), Mapping):  # local postgresql.* overrides dynamic ones
            roots.append(("dynamic-pg", "", local))
    if dynamic is not None:
        roots.append(("dynamic", "", dynamic))
    for where, path, present, instead in ROWS:
        for kind, prefix, root in roots:
            if kind == "dynamic-pg":
                if not path.startswith("postgresql."):
                    continue
            elif kind != where:
                continue
            if root is not None and present(_get(root, path)) and (prefix + path, instead) not in found:
                found.append((prefix + path, instead))
    return found


def warning_line(local: Optional[Mapping[str, Any]] = None,
                 dynamic: Optional[Mapping[str, Any]] = None) -> str:
    """The one warning line, '' when every key present is implemented."""
    found = unimplemented(local, dynamic)
    if not found:
        return ""
    return ("configuration keys accepted but not implemented by qhb-patroni: "
            + "; ".join(f"{path} ({instead})" for path, instead in found))
