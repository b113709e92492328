"""Validation of a local configuration (file + environment) and of a dynamic
configuration, driven by the schema table.

Reachability and port-in-use checks are not done here (they need I/O)."""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .checks import as_int, check, parse_bool, show
from .errors import KeyPath, Problem
from .filevalues import file_value_problems, shape_problems
from .schema import DYNAMIC_KEYS, LOCAL_KEYS, SUPPORTED_DCS, UNSUPPORTED_DCS, Key, Kind, dynamic_default

Origin = Callable[[KeyPath], str]

_ETCD_ADDRESS_KEYS = ("host", "hosts", "url", "proxy", "srv")
_CONSUL_ADDRESS_KEYS = ("host", "url")


def _walk(node: Any, parts: Tuple[str, ...], path: KeyPath) -> Iterator[Tuple[KeyPath, Any]]:
    """Present values at `parts` below `node` (`*` expands over mapping keys).
    A None section counts as an empty mapping."""
    if not parts:
        yield path, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        for name, child in node.items():
            yield from _walk(child, rest, path + (str(name),))
    elif head in node:
        yield from _walk(node[head], rest, path + (head,))


def _check_key(key: Key, root: Dict[str, Any], origin: Origin, problems: List[Problem]) -> None:
    parts = key.parts
    if key.required:
        for parent_path, parent in _walk(root, parts[:-1], ()):
            if parent is None or (isinstance(parent, dict) and parts[-1] not in parent):
                problems.append(Problem(origin(parent_path), parent_path + (parts[-1],), "missing required key"))
    for path, value in _walk(root, parts, ()):
        if value is None:
            if key.required and key.kind is not Kind.MAP:
                problems.append(Problem(origin(path), path, "missing required value"))
            continue
        spelled = bool_spelling(key, value)
        if spelled is not None:
            problems.append(Problem(origin(path), path,
                                    f"expected a boolean, got {show(value)} (Patroni 3.0.2 starts with it; "
                                    f"qhb-patroni reads it as {'true' if spelled else 'false'})", lenient=True))
            continue
        # 3.0.2 turns an unknown watchdog mode off (with a warning) and starts.
        lenient = key.kind is Kind.WATCHDOG_MODE and isinstance(value, str)
        for sub, message in check(key.kind, value, key.choices):
            if lenient:
                message += " (Patroni 3.0.2 starts with it and turns the watchdog off)"
            problems.append(Problem(origin(path + sub), path + sub, message, lenient=lenient))
        if key.required and key.kind is Kind.STR and isinstance(value, str) and not value.strip():
            problems.append(Problem(origin(path), path, "must not be empty"))
        message = range_problem(key, value)
        if message:
            problems.append(Problem(origin(path), path, message))


def bool_spelling(key: Key, value: Any) -> Optional[bool]:
    """The boolean a BOOL key's non-boolean value spells ('yes', 'off', 1, 0...),
    None when the value is a real boolean or spells nothing."""
    if key.kind is not Kind.BOOL or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    parsed = parse_bool(value)
    return None if parsed is None else bool(parsed)


def range_problem(key: Key, value: Any) -> str:
    """'' when an integer value is within the key's bounds (or is not an integer)."""
    if key.low is None and key.high is None or isinstance(value, bool):
        return ""
    number = as_int(value)
    if number is None or (isinstance(value, float) and not value.is_integer()):
        return ""  # reported by the type check
    low, high = key.low, key.high
    if (low is None or number >= low) and (high is None or number <= high):
        return ""
    if low is not None and high is not None:
        return f"must be between {low} and {high}, got {number}"
    if low is not None:
        return f"must be at least {low}, got {number}"
    return f"must be at most {high}, got {number}"


def _check_table(table: Tuple[Key, ...], root: Dict[str, Any], origin: Origin) -> List[Problem]:
    problems: List[Problem] = []
    for key in table:
        _check_key(key, root, origin, problems)
    return problems


def _dcs_problems(config: Dict[str, Any], origin: Origin) -> List[Problem]:
    problems: List[Problem] = []
    accepted = ", ".join(SUPPORTED_DCS)
    for name in UNSUPPORTED_DCS:
        if name in config:
            problems.append(Problem(origin((name,)), (),
                                    f"DCS {name} is not supported by qhb-patroni (use one of {accepted})"))
    present = [name for name in SUPPORTED_DCS if name in config]
    if len(present) > 1:
        problems.append(Problem(origin(()), (),
                                f"several DCS sections ({', '.join(present)}): expected exactly one of {accepted}"))
    elif not present and not problems:
        problems.append(Problem(origin(()), (), f"no DCS section: expected one of {accepted}"))
    for name in present:
        section = config[name]
        if section is not None and not isinstance(section, dict):
            continue  # reported by the type check
        wanted = _CONSUL_ADDRESS_KEYS if name == "consul" else _ETCD_ADDRESS_KEYS
        if not any((section or {}).get(k) for k in wanted):
            problems.append(Problem(origin((name,)), (name,), f"one of {', '.join(wanted)} is required"))
    return problems


def _timing_problems(dcs: Any, path: KeyPath, origin: Origin, local: bool = False) -> List[Problem]:
    """loop_wait + 2*retry_timeout <= ttl, when one of the three is given (the
    others take their defaults) and all are valid integers. In the local file
    (bootstrap.dcs) and in /config alike it is lenient: 3.0.2 neither checks it nor
    refuses such a configuration, so a node of ours must not ignore one a 3.0.2 node
    wrote; --validate-config still reports it."""
    names = ("ttl", "loop_wait", "retry_timeout")
    if not isinstance(dcs, dict) or not any(k in dcs for k in names):
        return []
    given = {k: dcs.get(k, dynamic_default(k)) for k in names}
    values = [as_int(v) if not isinstance(v, bool) else None for v in given.values()]
    ttl, loop_wait, retry_timeout = values
    if ttl is None or loop_wait is None or retry_timeout is None:
        return []
    if loop_wait + 2 * retry_timeout <= ttl:
        return []
    message = f"loop_wait + 2*retry_timeout must not exceed ttl ({loop_wait} + 2*{retry_timeout} > {ttl})"
    if local:
        message += ("; Patroni 3.0.2 does not check this and starts: a leader cut off from the DCS "
                    "may not notice before its key expires")
    return [Problem(origin(path + ("ttl",)), path, message, lenient=True)]


def _watchdog_problems(config: Dict[str, Any], origin: Origin) -> List[Problem]:
    """With a `watchdog` section (mode not off): its device timeout (ttl - safety_margin,
    ttl // 2 for -1, with the timings of bootstrap.dcs or their defaults) must be longer
    than loop_wait + retry_timeout - the loop pings the device, and one that meets an
    unreachable DCS spends up to retry_timeout after sleeping up to loop_wait - and at
    least loop_wait (a shorter one is refused when the leader arms it).  Lenient: 3.0.2
    starts with any of these (docs/watchdog.md)."""
    dog = config.get("watchdog")
    if not isinstance(dog, dict) or parse_bool(dog.get("mode", "automatic")) is False \
            or str(dog.get("mode", "")).strip().lower() in ("off", "disable", "disabled"):
        return []
    bootstrap = config.get("bootstrap")
    dcs = bootstrap.get("dcs") if isinstance(bootstrap, dict) else None
    dcs = dcs if isinstance(dcs, dict) else {}
    names = ("ttl", "loop_wait", "retry_timeout")
    values = [as_int(dcs.get(k, dynamic_default(k))) for k in names]
    margin = as_int(dog.get("safety_margin", 5))
    if any(v is None for v in values) or margin is None or isinstance(dog.get("safety_margin"), bool):
        return []
    ttl, loop_wait, retry_timeout = values
    timeout = ttl // 2 if margin == -1 else ttl - margin
    need = loop_wait + retry_timeout
    if timeout > need:
        return []
    path: KeyPath = ("watchdog", "safety_margin")
    best = ttl - need - 1
    advice = (f"use watchdog.safety_margin {best} or less" if best >= 0 else
              "raise ttl (bootstrap.dcs.ttl) above loop_wait + retry_timeout + 1")
    what = "ttl // 2" if margin == -1 else f"ttl - watchdog.safety_margin ({ttl} - {margin})"
    message = (f"the watchdog timeout {what} = {timeout} s is not longer than bootstrap.dcs.loop_wait + "
               f"bootstrap.dcs.retry_timeout ({loop_wait} + {retry_timeout} = {need} s): a DCS outage can "
               f"let the device reset the machine before the HA loop notices; {advice}")
    if timeout < loop_wait:
        message += "; a timeout shorter than loop_wait is refused and the leader runs without the watchdog"
    return [Problem(origin(path), path, message, lenient=True)]


def _extra_problems(config: Dict[str, Any], origin: Origin) -> List[Problem]:
    problems: List[Problem] = []
    pg = config.get("postgresql")
    params = pg.get("parameters") if isinstance(pg, dict) else None
    if isinstance(params, dict) and "unix_socket_directories" in params:
        value = params["unix_socket_directories"]
        if isinstance(value, str) and not value.strip():
            path: KeyPath = ("postgresql", "parameters", "unix_socket_directories")
            problems.append(Problem(origin(path), path, "must not be empty"))
    auth = pg.get("authentication") if isinstance(pg, dict) else None
    rewind = auth.get("rewind") if isinstance(auth, dict) else None
    if isinstance(rewind, dict) and not rewind.get("username"):
        path = ("postgresql", "authentication", "rewind", "username")
        problems.append(Problem(origin(path), path, "missing required key"))
    return problems


def validate_local(config: Dict[str, Any], origin: Optional[Origin] = None) -> List[Problem]:
    """Every problem of a local configuration, in schema order.
    `origin(path)` names where the value at `path` came from."""
    where: Origin = origin or (lambda _path: "")
    shape = shape_problems(config, "")
    if shape:  # the checks below assume finite, reasonably shaped values
        return [Problem(where(p.path), p.path, p.message) for p in shape]
    problems = _check_table(LOCAL_KEYS, config, where)
    problems += _dcs_problems(config, where)
    bootstrap = config.get("bootstrap")
    if isinstance(bootstrap, dict):
        problems += _timing_problems(bootstrap.get("dcs"), ("bootstrap", "dcs"), where, local=True)
    problems += _watchdog_problems(config, where)
    problems += _extra_problems(config, where)
    problems += [Problem(where(p.path), p.path, p.message) for p in file_value_problems(config, "", local=True)]
    return _dedup(problems)


def normalized(config: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of `config` where every boolean key spelled as 3.0.2 accepts it
    ('yes', 'off', 1...) holds the real boolean, so the daemon reads one type."""
    out = copy.deepcopy(config)
    for key in LOCAL_KEYS:
        if key.kind is not Kind.BOOL:
            continue
        for path, value in list(_walk(out, key.parts, ())):
            spelled = bool_spelling(key, value)
            if spelled is not None:
                parent: Any = out
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]] = spelled
    return out


def validate_dynamic(dynamic: Dict[str, Any], source: str = "dynamic configuration") -> List[Problem]:
    """Problems of a dynamic configuration (/config or bootstrap.dcs)."""
    where: Origin = lambda _path: source  # noqa: E731
    problems = _check_table(DYNAMIC_KEYS, dynamic, where)
    problems += _timing_problems(dynamic, (), where)
    return _dedup(problems)


def _dedup(problems: List[Problem]) -> List[Problem]:
    seen = set()
    out: List[Problem] = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
