"""Type checks of single values, one per schema Kind.

check(kind, value, choices) returns the problems found as (relative path,
message) pairs; an empty list means the value is acceptable."""
from __future__ import annotations

import ipaddress
import math
import re
from typing import Any, List, Sequence, Tuple

from .errors import KeyPath
from .schema import Kind

Found = List[Tuple[KeyPath, str]]

WATCHDOG_MODES = ("off", "disable", "disabled", "automatic", "auto", "required", "require")
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def parse_bool(value: Any) -> Any:
    """Patroni's boolean vocabulary; None when the value is not a boolean word."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def show(value: Any) -> str:
    """A short rendering of a value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def as_int(value: Any) -> Any:
    """int() the way the dynamic merge does it; None when that fails."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None  # int(inf) raises OverflowError
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer()
    return as_int(value) is not None


def _port_ok(text: str) -> bool:
    return text.isdigit() and 0 < int(text) <= 65535


def _split(value: str) -> Tuple[str, str]:
    host, _, port = value.rpartition(":")
    return host, port


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$")


def host_ok(host: str, wildcard: bool = False) -> bool:
    """A host name, an IPv4 address, an IPv6 address (bracketed or not) or,
    with `wildcard`, `*` (all addresses)."""
    host = host.strip()
    if wildcard and host == "*":
        return True
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        pass
    return bare == host and len(host) <= 253 and bool(_HOSTNAME.match(host))


def _hostport(value: Any, host_optional: bool, multi: bool) -> bool:
    if not isinstance(value, str) or ":" not in value:
        return False
    host, port = _split(value.strip())
    if not _port_ok(port):
        return False
    if not host:
        return host_optional
    if multi:
        return all(host_ok(h, wildcard=True) for h in host.split(","))
    return host_ok(host, wildcard=host_optional)


def _address(value: Any) -> bool:
    """'host' or 'host:port' ('[v6]:port' works; a bare v6 address does not)."""
    if not isinstance(value, str) or not value.strip():
        return False
    text = value.strip()
    if ":" not in text or text.endswith("]"):
        return host_ok(text)
    host, port = _split(text)
    return bool(host) and host_ok(host) and _port_ok(port)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _expected(kind: Kind, value: Any) -> Found:
    return [((), f"expected {kind.expected}, got {show(value)}")]


def _check_options(value: Any) -> Found:
    if isinstance(value, dict):
        return [((str(k),), f"expected a scalar value, got {show(v)}") for k, v in value.items()
                if not _is_scalar(v)]
    if not isinstance(value, list):
        return _expected(Kind.OPTIONS, value)
    found: Found = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            continue
        if isinstance(item, dict):
            if len(item) != 1:
                found.append(((i,), "expected a string or a single-key mapping, "
                               f"got a mapping with {len(item)} keys"))
            elif not _is_scalar(next(iter(item.values()))):
                found.append(((i,), "expected a scalar option value, got "
                               f"{show(next(iter(item.values())))}"))
            continue
        found.append(((i,), f"expected a string or a single-key mapping, got {show(item)}"))
    return found


def check(kind: Kind, value: Any, choices: Sequence[str] = ()) -> Found:
    """Problems of `value` against `kind` (None is checked by the caller)."""
    if kind is Kind.ANY:
        return []
    if kind is Kind.STR:
        if not isinstance(value, str):
            return _expected(kind, value)
        if choices and value.lower() not in [c.lower() for c in choices]:
            return [((), f"expected one of {', '.join(choices)}, got {show(value)}")]
        return []
    if kind is Kind.SCALAR:
        return [] if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
            else _expected(kind, value)
    if kind is Kind.VALUE:
        return [] if _is_scalar(value) else _expected(kind, value)
    if kind is Kind.INT:
        return [] if _is_int(value) else _expected(kind, value)
    if kind is Kind.BOOL:
        return [] if isinstance(value, bool) else _expected(kind, value)
    if kind is Kind.BOOL_OR_INT:
        return [] if isinstance(value, bool) or _is_int(value) else _expected(kind, value)
    if kind is Kind.MAP:
        return [] if isinstance(value, dict) else _expected(kind, value)
    if kind is Kind.SCALAR_MAP:
        if not isinstance(value, dict):
            return _expected(kind, value)
        return [((str(k),), f"expected a scalar value, got {show(v)}") for k, v in value.items()
                if not _is_scalar(v)]
    if kind is Kind.LIST:
        return [] if isinstance(value, list) else _expected(kind, value)
    if kind is Kind.STR_LIST:
        if not isinstance(value, list):
            return _expected(kind, value)
        return [((i,), f"expected a string, got {show(v)}") for i, v in enumerate(value)
                if not isinstance(v, str)]
    if kind is Kind.HOSTPORT:
        return [] if _hostport(value, False, False) else _expected(kind, value)
    if kind is Kind.BIND:
        return [] if _hostport(value, True, False) else _expected(kind, value)
    if kind is Kind.LISTEN:
        return [] if _hostport(value, False, True) else _expected(kind, value)
    if kind is Kind.ADDRESS:
        return [] if _address(value) else _expected(kind, value)
    if kind is Kind.HOSTS:
        if isinstance(value, str):
            items: List[Any] = [h for h in value.split(",") if h.strip()]
            return [] if items and all(_address(h) for h in items) else _expected(kind, value)
        if not isinstance(value, list):
            return _expected(kind, value)
        return [((i,), f"expected 'host:port', got {show(v)}") for i, v in enumerate(value) if not _address(v)]
    if kind is Kind.URL:
        ok = isinstance(value, str) and value.lower().startswith(("http://", "https://"))
        return [] if ok else _expected(kind, value)
    if kind is Kind.OPTIONS:
        return _check_options(value)
    if kind is Kind.WATCHDOG_MODE:
        ok = value is False or (isinstance(value, str) and value.lower() in WATCHDOG_MODES)
        return [] if ok else _expected(kind, value)
    raise AssertionError(f"unhandled kind {kind}")
