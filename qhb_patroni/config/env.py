"""PATRONI_* environment variables -> a configuration fragment (Patroni 3.0.2 rules).

The fragment is deep-merged over the file by the loader. Each value remembers
the variable it came from, so errors can name it. The process environment is
not modified: PATRONI_* variables are stripped where the database is started.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from .checks import parse_bool
from .errors import KeyPath
from .schema import AUTH_PARAMETERS

PREFIX = "PATRONI_"
CONFIGURATION_VARIABLE = "PATRONI_CONFIGURATION"

_SECTIONS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("restapi", ("listen", "connect_address", "certfile", "keyfile", "keyfile_password", "cafile", "ciphers",
                 "verify_client", "http_extra_headers", "https_extra_headers", "allowlist",
                 "allowlist_include_members", "max_connections", "max_connections_per_address")),
    ("ctl", ("insecure", "cacert", "certfile", "keyfile", "keyfile_password")),
    ("postgresql", ("listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass", "bin_dir")),
    ("log", ("level", "traceback_level", "format", "dateformat", "max_queue_size", "dir", "file_size",
             "file_num", "loggers")),
    ("raft", ("data_dir", "self_addr", "partner_addrs", "password", "bind_addr")),
)
_LEGACY_LOG = (("level", "LOGLEVEL"), ("format", "LOGFORMAT"), ("dateformat", "LOG_DATEFMT"))
_BOOLS = {("restapi", "allowlist_include_members"), ("ctl", "insecure")}
_INTS = {("log", "max_queue_size"), ("log", "file_size"), ("log", "file_num"), ("restapi", "max_connections"),
         ("restapi", "max_connections_per_address")}
_LISTS = {("raft", "partner_addrs"), ("restapi", "allowlist")}
_DICTS = {("restapi", "http_extra_headers"), ("restapi", "https_extra_headers"), ("log", "loggers")}

_DCS_SUFFIXES = frozenset((
    "HOST", "HOSTS", "PORT", "USE_PROXIES", "PROTOCOL", "SRV", "SRV_SUFFIX", "URL", "PROXY", "CACERT", "CERT",
    "KEY", "VERIFY", "TOKEN", "CHECKS", "DC", "CONSISTENCY", "REGISTER_SERVICE", "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME", "SERVICE_TAGS", "NAMESPACE", "CONTEXT", "USE_ENDPOINTS", "SCOPE_LABEL",
    "ROLE_LABEL", "POD_IP", "PORTS", "LABELS", "BYPASS_API_SERVICE", "RETRIABLE_HTTP_CODES", "KEY_PASSWORD",
    "USE_SSL", "SET_ACLS", "GROUP", "DATABASE",
))
_LIST_SUFFIXES = frozenset(("HOSTS", "PORTS", "CHECKS", "SERVICE_TAGS", "RETRIABLE_HTTP_CODES"))
_DICT_SUFFIXES = frozenset(("LABELS", "SET_ACLS"))
_BOOL_SUFFIXES = frozenset(("USE_PROXIES", "REGISTER_SERVICE", "USE_ENDPOINTS", "BYPASS_API_SERVICE", "VERIFY"))


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def parse_list(value: str) -> Any:
    """'a,b' -> ['a', 'b']; YAML lists ('- a', '[a, b]') as they are.
    An unparsable value is returned unchanged (validation reports it)."""
    text = value if value.strip().startswith("-") or "[" in value else f"[{value}]"
    parsed = _yaml(text)
    return parsed if isinstance(parsed, list) else value


def parse_dict(value: str) -> Any:
    text = value if value.strip().startswith("{") else "{" + value + "}"
    parsed = _yaml(text)
    return parsed if isinstance(parsed, dict) else value


def _int_or_raw(value: str) -> Any:
    try:
        return int(value.strip())
    except ValueError:
        return value


def _bool_or_raw(value: str) -> Any:
    parsed = parse_bool(value)
    return value if parsed is None else parsed


class _Builder:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.pending: Dict[str, str] = {k: v for k, v in environ.items() if k.startswith(PREFIX)}
        self.config: Dict[str, Any] = {}
        self.origins: Dict[KeyPath, str] = {}

    def pop(self, name: str) -> Optional[str]:
        return self.pending.pop(PREFIX + name.upper(), None)

    def put(self, path: KeyPath, value: Any, variable: str) -> None:
        node = self.config
        for part in path[:-1]:
            child = node.get(str(part))
            if not isinstance(child, dict):
                child = node[str(part)] = {}
            node = child
        node[str(path[-1])] = value
        self.origins[path] = variable

    def auth(self, prefix: KeyPath, name: str, params: Tuple[str, ...]) -> None:
        for param in params:
            variable = f"{PREFIX}{name.upper()}_{param.upper()}"
            value = self.pending.pop(variable, None)
            if value:
                self.put(prefix + (param,), value, variable)


def _convert(section: str, param: str, value: str) -> Any:
    if (section, param) in _BOOLS:
        return _bool_or_raw(value)
    if (section, param) in _INTS:
        return _int_or_raw(value)
    if (section, param) in _LISTS:
        return parse_list(value)
    if (section, param) in _DICTS:
        return parse_dict(value)
    return value


def _generic(b: _Builder) -> None:
    """PATRONI_<SECTION>_<SUFFIX> for the DCS-style suffixes."""
    for variable in list(b.pending):
        section, _, suffix = variable[len(PREFIX):].partition("_")
        if not section or suffix not in _DCS_SUFFIXES:
            continue
        raw = b.pending.pop(variable)
        value: Any = raw
        if section == "CITUS":
            if suffix == "GROUP":
                value = _int_or_raw(raw)
            elif suffix != "DATABASE":
                continue
        elif suffix == "PORT":
            value = _int_or_raw(raw) if raw else raw
        elif suffix in _LIST_SUFFIXES:
            value = parse_list(raw) if raw else raw
        elif suffix in _DICT_SUFFIXES:
            value = parse_dict(raw)
        elif suffix in _BOOL_SUFFIXES:
            value = parse_bool(raw)
            if value is None:
                value = raw
        b.put((section.lower(), suffix.lower()), value, variable)


def _users(b: _Builder) -> None:
    """Remaining PATRONI_<user>_PASSWORD (+ _OPTIONS) -> bootstrap.users.<user>."""
    for variable in list(b.pending):
        if variable not in b.pending:
            continue
        name, _, suffix = variable[len(PREFIX):].rpartition("_")
        if not name or suffix != "PASSWORD":
            continue
        password = b.pending.pop(variable)
        if not password:
            continue
        b.put(("bootstrap", "users", name, "password"), password, variable)
        options_var = f"{PREFIX}{name}_OPTIONS"
        options = b.pending.pop(options_var, None)
        parsed = parse_list(options) if options else None
        if parsed:
            b.put(("bootstrap", "users", name, "options"), parsed, options_var)


def environment_config(environ: Mapping[str, str],
                       file_config: Optional[Mapping[str, Any]] = None) -> Tuple[Dict[str, Any], Dict[KeyPath, str]]:
    """The configuration fragment defined by PATRONI_* variables, and for each
    value set the name of its variable. `file_config` decides whether
    PATRONI_ETCD(3)_USERNAME/PASSWORD apply (only when that section exists)."""
    b = _Builder(environ)
    for param in ("name", "namespace", "scope"):
        value = b.pop(param)
        if value:
            b.put((param,), value, PREFIX + param.upper())
    legacy: Dict[str, Tuple[str, str]] = {}
    for new, old in _LEGACY_LOG:
        value = b.pop(old)
        if value and PREFIX + "LOG_" + new.upper() not in b.pending:
            legacy[new] = (value, PREFIX + old)
    for section, params in _SECTIONS:
        for param in params:
            variable = f"{PREFIX}{section.upper()}_{param.upper()}"
            value = b.pending.pop(variable, None)
            if not value and section == "log" and param in legacy:
                value, variable = legacy[param]
            if value:
                b.put((section, param), _convert(section, param, value), variable)
    b.auth(("restapi", "authentication"), "restapi", AUTH_PARAMETERS[:2])
    for user in ("replication", "superuser", "rewind"):
        b.auth(("postgresql", "authentication", user), user, AUTH_PARAMETERS)
    _generic(b)
    existing: List[str] = list(b.config) + list(file_config or {})
    for dcs in ("etcd", "etcd3"):
        if dcs in existing:
            b.auth((dcs,), dcs, AUTH_PARAMETERS[:2])
    _users(b)
    return b.config, b.origins
