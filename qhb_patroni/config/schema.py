"""The configuration schema as data: one row per known key.

Used by validation (qhb_patroni.config.validator), by the dynamic-config merge
(which keys are dynamic, which are int()-coerced) and later by the docs.

Paths are dotted; `*` stands for any key of a mapping (e.g. `tags.*`).
Unknown keys are allowed everywhere (Patroni ignores them); known keys are
type-checked.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, List, Optional, Tuple


class Kind(enum.Enum):
    """Value types of the schema; `expected` is the text of error messages."""

    STR = "str"
    SCALAR = "scalar"
    VALUE = "value"
    INT = "int"
    BOOL = "bool"
    BOOL_OR_INT = "bool_or_int"
    MAP = "map"
    SCALAR_MAP = "scalar_map"
    LIST = "list"
    STR_LIST = "str_list"
    HOSTPORT = "hostport"
    BIND = "bind"  # host:port, host may be empty (all addresses)
    LISTEN = "listen"  # host[,host...]:port
    ADDRESS = "address"
    HOSTS = "hosts"
    URL = "url"
    OPTIONS = "options"
    WATCHDOG_MODE = "watchdog_mode"
    ANY = "any"

    @property
    def expected(self) -> str:
        return _EXPECTED[self]


_EXPECTED: Dict[Kind, str] = {
    Kind.STR: "a string",
    Kind.SCALAR: "a string or a number",
    Kind.VALUE: "a scalar value",
    Kind.INT: "an integer",
    Kind.BOOL: "a boolean",
    Kind.BOOL_OR_INT: "a boolean or an integer",
    Kind.MAP: "a mapping",
    Kind.SCALAR_MAP: "a mapping of names to scalar values",
    Kind.LIST: "a list",
    Kind.STR_LIST: "a list of strings",
    Kind.HOSTPORT: "'host:port'",
    Kind.BIND: "'host:port'",
    Kind.LISTEN: "'host:port'",
    Kind.ADDRESS: "'host' or 'host:port'",
    Kind.HOSTS: "a list of 'host:port' strings or a comma-separated string",
    Kind.URL: "an http:// or https:// URL",
    Kind.OPTIONS: "a list of strings or single-key mappings, or a mapping",
    Kind.WATCHDOG_MODE: "one of off, automatic, required",
    Kind.ANY: "anything",
}


class Scope(enum.Enum):
    LOCAL = "local"  # only from the local file / environment
    DYNAMIC = "dynamic"  # only from /config (or bootstrap.dcs)
    BOTH = "both"  # dynamic value, overridden by a local one


@dataclass(frozen=True)
class Key:
    path: str
    kind: Kind
    required: bool = False
    default: Any = None
    scope: Scope = Scope.LOCAL
    env: Optional[str] = None
    choices: Tuple[str, ...] = ()
    doc: str = ""
    low: Optional[int] = None  # inclusive bounds of INT values
    high: Optional[int] = None

    @property
    def parts(self) -> Tuple[str, ...]:
        return tuple(self.path.split("."))


SUPPORTED_DCS: Tuple[str, ...] = ("consul", "etcd", "etcd3")
UNSUPPORTED_DCS: Tuple[str, ...] = ("exhibitor", "kubernetes", "raft", "zookeeper")

# Keys allowed in postgresql.authentication.<user> (others are dropped by the merge).
AUTH_PARAMETERS: Tuple[str, ...] = (
    "username", "password", "sslmode", "sslcert", "sslkey", "sslpassword", "sslrootcert",
    "sslcrl", "sslcrldir", "gssencmode", "channel_binding",
)

# postgresql sub-keys never taken from the dynamic configuration.
POSTGRESQL_LOCAL_ONLY: Tuple[str, ...] = (
    "connect_address", "proxy_address", "listen", "config_dir", "data_dir", "pgpass", "authentication",
)

STANDBY_CLUSTER_KEYS: Tuple[str, ...] = (
    "host", "port", "primary_slot_name", "create_replica_methods", "restore_command",
    "archive_cleanup_command", "recovery_min_apply_delay",
)

# ---------------------------------------------------------------- dynamic keys
# Relative paths; they live at the top of /config and of bootstrap.dcs.
# (key, kind, default, doc). Defaults are Patroni 3.0.2's.
_DYNAMIC: Tuple[Tuple[str, Kind, Any, str], ...] = (
    ("ttl", Kind.INT, 30, "leader key TTL (s)"),
    ("loop_wait", Kind.INT, 10, "HA cycle period (s)"),
    ("retry_timeout", Kind.INT, 10, "DCS and database retry deadline (s)"),
    ("maximum_lag_on_failover", Kind.INT, 1048576, "max bytes a replica may lag and still race"),
    ("maximum_lag_on_syncnode", Kind.INT, -1, ">0: lagging sync standbys are replaced"),
    ("max_timelines_history", Kind.INT, 0, "lines kept in /history (0 = all)"),
    ("primary_start_timeout", Kind.INT, 300, "s a starting primary may take before failover"),
    ("primary_stop_timeout", Kind.INT, 0, "sync mode: SIGKILL the postmaster after this (s)"),
    ("master_start_timeout", Kind.INT, None, "legacy name of primary_start_timeout"),
    ("master_stop_timeout", Kind.INT, None, "legacy name of primary_stop_timeout"),
    ("check_timeline", Kind.BOOL_OR_INT, False, "exclude candidates on an older timeline"),
    ("synchronous_mode", Kind.BOOL, False, "managed synchronous replication"),
    ("synchronous_mode_strict", Kind.BOOL, False, "keep synchronous_standby_names='*' without candidates"),
    ("synchronous_node_count", Kind.INT, 1, "number of synchronous standbys"),
    ("failsafe_mode", Kind.BOOL, False, "DCS failsafe mode (not implemented, warned at start)"),
    ("pause", Kind.BOOL, None, "maintenance mode"),
    ("standby_cluster", Kind.MAP, None, "replicate from a remote primary (not implemented, warned at start)"),
    ("standby_cluster.host", Kind.STR, None, "remote primary host"),
    ("standby_cluster.port", Kind.INT, None, "remote primary port"),
    ("standby_cluster.primary_slot_name", Kind.STR, None, "slot on the remote (none if absent)"),
    ("standby_cluster.create_replica_methods", Kind.STR_LIST, None, "methods for the initial clone"),
    ("standby_cluster.restore_command", Kind.STR, None, ""),
    ("standby_cluster.archive_cleanup_command", Kind.STR, None, ""),
    ("standby_cluster.recovery_min_apply_delay", Kind.SCALAR, None, ""),
    ("slots", Kind.MAP, None, "permanent replication slots (not implemented, warned at start)"),
    ("slots.*", Kind.MAP, None, "{type: physical} or {type: logical, database, plugin}"),
    ("permanent_slots", Kind.MAP, None, "alias of slots"),
    ("permanent_replication_slots", Kind.MAP, None, "alias of slots"),
    ("ignore_slots", Kind.LIST, None, "matchers {name, type, database, plugin} (not implemented, warned at start)"),
)

# Keys of the dynamic section that Patroni int()-coerces (a failure rejects the
# whole new dynamic configuration) and the ones taken as-is.
DYNAMIC_INT_KEYS: Tuple[str, ...] = (
    "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "maximum_lag_on_syncnode",
    "primary_start_timeout", "primary_stop_timeout", "check_timeline", "synchronous_node_count",
    "max_timelines_history",
)
DYNAMIC_AS_IS_KEYS: Tuple[str, ...] = ("synchronous_mode", "synchronous_mode_strict", "failsafe_mode")
LEGACY_DYNAMIC_ALIASES: Dict[str, str] = {
    "master_start_timeout": "primary_start_timeout",
    "master_stop_timeout": "primary_stop_timeout",
}


# Inclusive bounds of integer keys: (low, high); None = unbounded. Relative to the
# root of a dynamic configuration for the dynamic keys, full paths for the others.
_PORT = (1, 65535)
DYNAMIC_RANGES: Dict[str, Tuple[Optional[int], Optional[int]]] = {
    "ttl": (2, None),
    "loop_wait": (1, None),
    "retry_timeout": (1, None),
    "maximum_lag_on_failover": (0, None),
    "maximum_lag_on_syncnode": (-1, None),
    "max_timelines_history": (0, None),
    "primary_start_timeout": (0, None),
    "primary_stop_timeout": (0, None),
    "master_start_timeout": (0, None),
    "master_stop_timeout": (0, None),
    "synchronous_node_count": (1, None),
    "standby_cluster.port": _PORT,
    "postgresql.pg_ctl_timeout": (1, None),
}
LOCAL_RANGES: Dict[str, Tuple[Optional[int], Optional[int]]] = {
    "etcd.port": _PORT,
    "etcd3.port": _PORT,
    "consul.port": _PORT,
    "restapi.request_queue_size": (0, None),
    "restapi.max_connections": (1, 1000000),
    "restapi.max_connections_per_address": (1, 1000000),
    "log.max_queue_size": (1, None),
    "log.file_num": (0, None),
    "log.file_size": (0, None),
    "watchdog.safety_margin": (-1, None),
    "citus.group": (0, None),
}


def _with_ranges(rows: List[Key], ranges: Dict[str, Tuple[Optional[int], Optional[int]]],
                 prefix: str = "") -> List[Key]:
    out = []
    for row in rows:
        bounds = ranges.get(row.path[len(prefix):]) if row.path.startswith(prefix) else None
        out.append(replace(row, low=bounds[0], high=bounds[1]) if bounds else row)
    return out


def dynamic_default(name: str) -> Any:
    for key, _kind, default, _doc in _DYNAMIC:
        if key == name:
            return default
    raise KeyError(name)


# ---------------------------------------------------------------- postgresql.*
# (sub-path, kind, scope, env suffix or None, doc)
_PG: Tuple[Tuple[str, Kind, Scope, Optional[str], str], ...] = (
    ("listen", Kind.LISTEN, Scope.LOCAL, "LISTEN", "addr[,addr...]:port"),
    ("connect_address", Kind.HOSTPORT, Scope.LOCAL, "CONNECT_ADDRESS", "published in conn_url"),
    ("proxy_address", Kind.HOSTPORT, Scope.LOCAL, "PROXY_ADDRESS", "published as proxy_url"),
    ("data_dir", Kind.STR, Scope.LOCAL, "DATA_DIR", "data directory"),
    ("config_dir", Kind.STR, Scope.LOCAL, "CONFIG_DIR", "directory of the configuration files"),
    ("config_base_name", Kind.STR, Scope.LOCAL, None, "base name of <name>.conf (QHB: qhb)"),
    ("hba_file", Kind.STR, Scope.BOTH, None, "hba file name (QHB: qhb_hba.conf)"),
    ("ident_file", Kind.STR, Scope.BOTH, None, "ident file name (QHB: qhb_ident.conf)"),
    ("database", Kind.STR, Scope.LOCAL, None, "database for connections (QHB: qhb)"),
    ("bin_dir", Kind.STR, Scope.BOTH, "BIN_DIR", "directory of the server binaries"),
    ("bin_name", Kind.MAP, Scope.BOTH, None, "custom binary names"),
    ("bin_name.*", Kind.STR, Scope.BOTH, None, ""),
    ("pgpass", Kind.STR, Scope.LOCAL, "PGPASS", "password file (default ~/pgpass)"),
    ("authentication", Kind.MAP, Scope.LOCAL, None, ""),
    ("authentication.superuser", Kind.MAP, Scope.LOCAL, None, ""),
    ("authentication.replication", Kind.MAP, Scope.LOCAL, None, ""),
    ("authentication.rewind", Kind.MAP, Scope.LOCAL, None, ""),
    ("parameters", Kind.SCALAR_MAP, Scope.BOTH, None, "server parameters (GUCs)"),
    ("parameters.unix_socket_directories", Kind.STR, Scope.BOTH, None, ""),
    ("pg_hba", Kind.STR_LIST, Scope.BOTH, None, "full content of the hba file"),
    ("pg_ident", Kind.STR_LIST, Scope.BOTH, None, "full content of the ident file"),
    ("callbacks", Kind.MAP, Scope.BOTH, None, ""),
    ("callbacks.*", Kind.STR, Scope.BOTH, None, "command run as <cmd> <action> <role> <scope>"),
    ("create_replica_methods", Kind.STR_LIST, Scope.BOTH, None, "ordered replica creation methods"),
    ("create_replica_method", Kind.STR_LIST, Scope.BOTH, None, "legacy name"),
    ("basebackup", Kind.OPTIONS, Scope.BOTH, None, "options of the basebackup method"),
    ("recovery_conf", Kind.MAP, Scope.BOTH, None, "extra recovery parameters"),
    ("custom_conf", Kind.STR, Scope.BOTH, None, "file used instead of <base>.base.conf"),
    ("pg_ctl_timeout", Kind.INT, Scope.BOTH, None, "start/stop wait (s)"),
    ("use_unix_socket", Kind.BOOL, Scope.BOTH, None, ""),
    ("use_unix_socket_repl", Kind.BOOL, Scope.BOTH, None, ""),
    ("use_pg_rewind", Kind.BOOL, Scope.BOTH, None, ""),
    ("remove_data_directory_on_rewind_failure", Kind.BOOL, Scope.BOTH, None, ""),
    ("remove_data_directory_on_diverged_timelines", Kind.BOOL, Scope.BOTH, None, ""),
    ("pre_promote", Kind.STR, Scope.BOTH, None, "fencing command before promote"),
    ("krbsrvname", Kind.STR, Scope.BOTH, None, ""),
    ("use_slots", Kind.BOOL, Scope.DYNAMIC, None, "global only"),
)

_PG_REQUIRED = ("listen", "data_dir", "authentication", "authentication.superuser",
                "authentication.replication")


def _auth_rows(user: str, required: bool) -> List[Key]:
    env_user = user.upper()
    rows = [Key(f"postgresql.authentication.{user}.username", Kind.STR, required=required,
                env=f"PATRONI_{env_user}_USERNAME")]
    for param in AUTH_PARAMETERS[1:]:
        kind = Kind.SCALAR if param in ("password", "sslpassword") else Kind.STR
        rows.append(Key(f"postgresql.authentication.{user}.{param}", kind,
                        env=f"PATRONI_{env_user}_{param.upper()}"))
    return rows


def _dcs_rows() -> List[Key]:
    rows: List[Key] = []
    for dcs in ("etcd", "etcd3"):
        env = f"PATRONI_{dcs.upper()}_"
        rows += [
            Key(dcs, Kind.MAP, doc=f"{dcs} DCS section"),
            Key(f"{dcs}.host", Kind.ADDRESS, env=env + "HOST"),
            Key(f"{dcs}.hosts", Kind.HOSTS, env=env + "HOSTS"),
            Key(f"{dcs}.port", Kind.INT, env=env + "PORT"),
            Key(f"{dcs}.use_proxies", Kind.BOOL, env=env + "USE_PROXIES"),
            Key(f"{dcs}.url", Kind.URL, env=env + "URL"),
            Key(f"{dcs}.proxy", Kind.URL, env=env + "PROXY"),
            Key(f"{dcs}.srv", Kind.STR, env=env + "SRV"),
            Key(f"{dcs}.srv_suffix", Kind.STR, env=env + "SRV_SUFFIX"),
            Key(f"{dcs}.protocol", Kind.STR, env=env + "PROTOCOL", choices=("http", "https")),
            Key(f"{dcs}.username", Kind.STR, env=env + "USERNAME"),
            Key(f"{dcs}.password", Kind.SCALAR, env=env + "PASSWORD"),
            Key(f"{dcs}.cacert", Kind.STR, env=env + "CACERT"),
            Key(f"{dcs}.cert", Kind.STR, env=env + "CERT"),
            Key(f"{dcs}.key", Kind.STR, env=env + "KEY"),
        ]
    env = "PATRONI_CONSUL_"
    rows += [
        Key("consul", Kind.MAP, doc="Consul DCS section"),
        Key("consul.host", Kind.ADDRESS, default="127.0.0.1:8500", env=env + "HOST"),
        Key("consul.url", Kind.URL, env=env + "URL"),
        Key("consul.port", Kind.INT, default=8500, env=env + "PORT"),
        Key("consul.scheme", Kind.STR, default="http", choices=("http", "https")),
        Key("consul.token", Kind.SCALAR, env=env + "TOKEN"),
        Key("consul.verify", Kind.BOOL, env=env + "VERIFY"),
        Key("consul.cacert", Kind.STR, env=env + "CACERT"),
        Key("consul.cert", Kind.STR, env=env + "CERT"),
        Key("consul.key", Kind.STR, env=env + "KEY"),
        Key("consul.dc", Kind.STR, env=env + "DC"),
        Key("consul.consistency", Kind.STR, default="default", env=env + "CONSISTENCY",
            choices=("default", "consistent", "stale")),
        Key("consul.checks", Kind.LIST, env=env + "CHECKS"),
        Key("consul.register_service", Kind.BOOL, default=False, env=env + "REGISTER_SERVICE"),
        Key("consul.service_tags", Kind.STR_LIST, env=env + "SERVICE_TAGS"),
        Key("consul.service_check_interval", Kind.STR, default="5s", env=env + "SERVICE_CHECK_INTERVAL"),
        Key("consul.service_check_tls_server_name", Kind.STR, env=env + "SERVICE_CHECK_TLS_SERVER_NAME"),
    ]
    return rows


def _build_local() -> List[Key]:
    rows: List[Key] = [
        Key("name", Kind.STR, required=True, env="PATRONI_NAME", doc="unique member name"),
        Key("scope", Kind.STR, required=True, env="PATRONI_SCOPE", doc="cluster name"),
        Key("namespace", Kind.STR, default="/service", env="PATRONI_NAMESPACE", doc="DCS path prefix"),
        Key("restapi", Kind.MAP, required=True),
        Key("restapi.listen", Kind.BIND, required=True, env="PATRONI_RESTAPI_LISTEN"),
        Key("restapi.connect_address", Kind.HOSTPORT, env="PATRONI_RESTAPI_CONNECT_ADDRESS"),
        Key("restapi.authentication", Kind.MAP),
        Key("restapi.authentication.username", Kind.SCALAR, env="PATRONI_RESTAPI_USERNAME"),
        Key("restapi.authentication.password", Kind.SCALAR, env="PATRONI_RESTAPI_PASSWORD"),
        Key("restapi.certfile", Kind.STR, env="PATRONI_RESTAPI_CERTFILE"),
        Key("restapi.keyfile", Kind.STR, env="PATRONI_RESTAPI_KEYFILE"),
        Key("restapi.keyfile_password", Kind.SCALAR, env="PATRONI_RESTAPI_KEYFILE_PASSWORD"),
        Key("restapi.cafile", Kind.STR, env="PATRONI_RESTAPI_CAFILE"),
        Key("restapi.ciphers", Kind.STR, env="PATRONI_RESTAPI_CIPHERS"),
        Key("restapi.verify_client", Kind.STR, default="none", env="PATRONI_RESTAPI_VERIFY_CLIENT",
            choices=("none", "optional", "required")),
        Key("restapi.allowlist", Kind.STR_LIST, env="PATRONI_RESTAPI_ALLOWLIST"),
        Key("restapi.allowlist_include_members", Kind.BOOL, default=False,
            env="PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS"),
        Key("restapi.http_extra_headers", Kind.MAP, env="PATRONI_RESTAPI_HTTP_EXTRA_HEADERS"),
        Key("restapi.https_extra_headers", Kind.MAP, env="PATRONI_RESTAPI_HTTPS_EXTRA_HEADERS"),
        Key("restapi.request_queue_size", Kind.INT),
        Key("restapi.max_connections", Kind.INT, default=1000, env="PATRONI_RESTAPI_MAX_CONNECTIONS"),
        Key("restapi.max_connections_per_address", Kind.INT, default=100,
            env="PATRONI_RESTAPI_MAX_CONNECTIONS_PER_ADDRESS"),
        Key("ctl", Kind.MAP),
        Key("ctl.insecure", Kind.BOOL, default=False, env="PATRONI_CTL_INSECURE"),
        Key("ctl.cacert", Kind.STR, env="PATRONI_CTL_CACERT"),
        Key("ctl.certfile", Kind.STR, env="PATRONI_CTL_CERTFILE"),
        Key("ctl.keyfile", Kind.STR, env="PATRONI_CTL_KEYFILE"),
        Key("ctl.keyfile_password", Kind.SCALAR, env="PATRONI_CTL_KEYFILE_PASSWORD"),
        Key("ctl.authentication", Kind.MAP, doc="basic auth of patronictl and member-to-member calls"),
        Key("ctl.authentication.username", Kind.SCALAR),
        Key("ctl.authentication.password", Kind.SCALAR),
        Key("log", Kind.MAP),
        Key("log.level", Kind.STR, default="INFO", env="PATRONI_LOG_LEVEL",
            choices=("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL", "NOTSET")),
        Key("log.traceback_level", Kind.STR, default="ERROR", env="PATRONI_LOG_TRACEBACK_LEVEL",
            choices=("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL", "NOTSET")),
        Key("log.format", Kind.STR, default="%(asctime)s %(levelname)s: %(message)s", env="PATRONI_LOG_FORMAT"),
        Key("log.dateformat", Kind.STR, env="PATRONI_LOG_DATEFORMAT"),
        Key("log.max_queue_size", Kind.INT, default=1000, env="PATRONI_LOG_MAX_QUEUE_SIZE"),
        Key("log.dir", Kind.STR, env="PATRONI_LOG_DIR"),
        Key("log.file_num", Kind.INT, default=4, env="PATRONI_LOG_FILE_NUM"),
        Key("log.file_size", Kind.INT, default=25000000, env="PATRONI_LOG_FILE_SIZE"),
        Key("log.loggers", Kind.MAP, env="PATRONI_LOG_LOGGERS"),
    ]
    rows += _dcs_rows()
    rows += [
        Key("bootstrap", Kind.MAP, doc="used only by the node that initialises a new cluster"),
        Key("bootstrap.dcs", Kind.MAP, doc="initial dynamic configuration, written as /config"),
        Key("bootstrap.method", Kind.STR),
        Key("bootstrap.initdb", Kind.OPTIONS, doc="initdb options"),
        Key("bootstrap.pg_hba", Kind.STR_LIST, doc="lines appended to the hba file after initdb"),
        Key("bootstrap.qhb_hba", Kind.STR_LIST, doc="QHB name of bootstrap.pg_hba"),
        Key("bootstrap.users", Kind.MAP, doc="users created after bootstrap"),
        Key("bootstrap.users.*", Kind.MAP),
        Key("bootstrap.users.*.password", Kind.SCALAR),
        Key("bootstrap.users.*.options", Kind.STR_LIST),
        Key("bootstrap.post_bootstrap", Kind.STR),
        Key("bootstrap.post_init", Kind.STR),
    ]
    rows += dynamic_rows("bootstrap.dcs.")
    rows += [Key("postgresql", Kind.MAP, required=True)]
    for sub, kind, scope, env, doc in _PG:
        rows.append(Key(f"postgresql.{sub}", kind, required=sub in _PG_REQUIRED, scope=scope,
                        env=f"PATRONI_POSTGRESQL_{env}" if env else None, doc=doc))
        if sub == "authentication.rewind":
            for user in ("superuser", "replication"):
                rows += _auth_rows(user, True)
            rows += _auth_rows("rewind", False)
    rows += [
        Key("watchdog", Kind.MAP),
        Key("watchdog.mode", Kind.WATCHDOG_MODE, default="automatic"),
        Key("watchdog.device", Kind.STR, default="/dev/watchdog"),
        Key("watchdog.safety_margin", Kind.INT, default=5),
        Key("watchdog.driver", Kind.STR, default="default"),
        Key("tags", Kind.MAP),
        Key("tags.*", Kind.VALUE, doc="custom tags: any scalar"),
        Key("tags.nofailover", Kind.BOOL, default=False),
        Key("tags.clonefrom", Kind.BOOL, default=False),
        Key("tags.noloadbalance", Kind.BOOL, default=False),
        Key("tags.nosync", Kind.BOOL, default=False),
        Key("tags.replicatefrom", Kind.STR),
        Key("citus", Kind.MAP),
        Key("citus.group", Kind.INT, env="PATRONI_CITUS_GROUP"),
        Key("citus.database", Kind.STR, env="PATRONI_CITUS_DATABASE"),
    ]
    # Top-level dynamic keys in a local file are ignored by the merge, but a
    # mistyped one is still reported.
    rows += [k for k in dynamic_rows("") if k.parts[0] != "postgresql"]
    # postgresql.* keys that are also dynamic take the dynamic bounds.
    rows = _with_ranges(rows, {"postgresql.pg_ctl_timeout": DYNAMIC_RANGES["postgresql.pg_ctl_timeout"]})
    return _with_ranges(rows, LOCAL_RANGES)


def dynamic_rows(prefix: str) -> List[Key]:
    """Rows of a dynamic configuration rooted at `prefix` ('' for /config,
    'bootstrap.dcs.' inside the local file)."""
    rows = [Key(prefix + key, kind, default=default, scope=Scope.DYNAMIC, doc=doc)
            for key, kind, default, doc in _DYNAMIC]
    rows.append(Key(prefix + "postgresql", Kind.MAP, scope=Scope.DYNAMIC))
    for sub, kind, scope, _env, doc in _PG:
        if scope is Scope.LOCAL and sub.split(".")[0] in POSTGRESQL_LOCAL_ONLY:
            continue
        rows.append(Key(f"{prefix}postgresql.{sub}", kind, scope=Scope.DYNAMIC, doc=doc))
    return _with_ranges(rows, DYNAMIC_RANGES, prefix)


LOCAL_KEYS: Tuple[Key, ...] = tuple(_build_local())
DYNAMIC_KEYS: Tuple[Key, ...] = tuple(dynamic_rows(""))


def find(path: str, table: Tuple[Key, ...] = LOCAL_KEYS) -> Optional[Key]:
    """The first row with exactly this dotted path."""
    for key in table:
        if key.path == path:
            return key
    return None


def env_keys() -> Iterator[Key]:
    """Rows that an environment variable can set (for the docs)."""
    return (k for k in LOCAL_KEYS if k.env)


def with_prefix(keys: Tuple[Key, ...], prefix: str) -> Tuple[Key, ...]:
    return tuple(replace(k, path=prefix + k.path) for k in keys)
