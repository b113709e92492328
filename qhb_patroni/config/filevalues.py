"""Values a configuration holds that the manager writes into the server's files
(the main config, hba, ident, pgpass): parameter names must be GUC names and no
value may hold a control character (see `gucnames`).  Used by `validate_local`
(config files, --validate-config) and `dynvalid` (/config), with `shape_problems`:
numbers must be finite and nesting shallow enough for the DCS key codec, since
local values are published too (tags in the member key, bootstrap.dcs as /config)."""
from __future__ import annotations

import math
from typing import Any, Iterator, List, Mapping, Sequence, Tuple

from ..dcs.safejson import MAX_DEPTH, text_problem
from .errors import KeyPath, Problem
from .gucnames import name_problem, value_problem

# Where values that end up in a file live: (path with `*` wildcards, names are GUCs too).
_DYNAMIC_FILE_VALUES: Tuple[Tuple[str, bool], ...] = (
    ("postgresql.parameters", True),
    ("postgresql.recovery_conf", True),
    ("postgresql.pg_hba", False),
    ("postgresql.pg_ident", False),
    ("standby_cluster", False),
)
_LOCAL_FILE_VALUES: Tuple[Tuple[str, bool], ...] = _DYNAMIC_FILE_VALUES + (
    ("postgresql.authentication.*", False),  # passwords land in primary_conninfo and the pgpass file
    ("bootstrap.pg_hba", False),
    ("bootstrap.qhb_hba", False),
    ("name", False),  # application_name in primary_conninfo
    ("scope", False),  # cluster_name
) + tuple(("bootstrap.dcs." + path, names) for path, names in _DYNAMIC_FILE_VALUES)


def _at(root: Any, parts: Sequence[str], path: KeyPath) -> Iterator[Tuple[KeyPath, Any]]:
    if not parts:
        yield path, root
        return
    if not isinstance(root, Mapping):
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        for name, child in root.items():
            yield from _at(child, rest, path + (str(name),))
    elif head in root:
        yield from _at(root[head], rest, path + (head,))


def _values(node: Any, path: KeyPath) -> Iterator[Tuple[KeyPath, Any]]:
    """Scalars below `node` (a mapping's values, a list's items, or `node` itself)."""
    if len(path) > MAX_DEPTH + 8:
        return  # deeper than any real value (types are checked elsewhere): no RecursionError
    if isinstance(node, Mapping):
        for name, child in node.items():
            yield from _values(child, path + (str(name),))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _values(child, path + (i,))
    elif node is not None:
        yield path, node


def file_value_problems(config: Any, source: str, local: bool = False) -> List[Problem]:
    """Parameter names that are not GUC names and values with control characters,
    wherever a configuration holds something the manager writes into a file."""
    problems: List[Problem] = []
    for dotted, are_names in _LOCAL_FILE_VALUES if local else _DYNAMIC_FILE_VALUES:
        for path, node in _at(config, dotted.split("."), ()):
            if are_names and isinstance(node, Mapping):
                for name in node:
                    message = name_problem(name)
                    if message:
                        problems.append(Problem(source, path, message))
            for where, value in _values(node, path):
                message = value_problem(value)
                if message:
                    problems.append(Problem(source, where, message))
    return problems


MAX_VALUES = 100_000


def shape_problems(value: Any, source: str) -> List[Problem]:
    """Non-finite numbers anywhere and nesting deeper than the DCS codec reads back."""
    problems: List[Problem] = []
    stack: List[Tuple[KeyPath, Any]] = [((), value)]
    visited = 0
    while stack:
        path, node = stack.pop()
        visited += 1
        if visited > MAX_VALUES:  # YAML aliases can make a few lines a billion values
            problems.append(Problem(source, (), f"more than {MAX_VALUES} values"))
            break
        if len(path) > MAX_DEPTH:
            problems.append(Problem(source, path[:3], f"nested deeper than {MAX_DEPTH} levels"))
            break
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(Problem(source, path, f"expected a finite number, got {node}"))
        elif isinstance(node, str) and text_problem(node):
            problems.append(Problem(source, path, f"not valid Unicode: {text_problem(node)}"))
        elif isinstance(node, Mapping):
            for key in node:
                if isinstance(key, str) and text_problem(key):
                    problems.append(Problem(source, path, f"a key is not valid Unicode: {text_problem(key)}"))
            stack.extend((path + (str(k),), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node))
    return sorted(problems, key=lambda p: [str(part) for part in p.path])
