"""Typed view of the parts of the effective configuration the manager uses."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..core.methods import BASEBACKUP, CustomBootstrap, ReplicaMethod, custom_bootstrap, replica_methods
from ..core.standby import StandbyCluster, standby_cluster
from .names import DEFAULT_CONFIG_BASE_NAME, DEFAULT_HBA_FILE, DEFAULT_IDENT_FILE, Layout, resolve_binaries

_LOCAL_HOSTS = ("*", "0.0.0.0", "::", "127.0.0.1", "localhost")


class ManagerError(Exception):
    """A manager operation failed; the message is a one-line reason."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Optional[str] = None
    extra: Mapping[str, str] = field(default_factory=dict)  # sslmode, sslcert, ...


def _as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1", "y")
    return bool(value)


def _lines(value: Any) -> Optional[List[str]]:
    """A pg_hba / pg_ident list as file lines; None when not set (or not a list)."""
    if not isinstance(value, list) or not value:
        return None
    return [str(line) for line in value]


def _stop_timeout(config: Mapping[str, Any]) -> Optional[float]:
    """primary_stop_timeout (legacy master_stop_timeout): only in synchronous mode and > 0 (3.0.2)."""
    value = config.get("primary_stop_timeout")
    if value is None:
        value = config.get("master_stop_timeout")
    try:
        seconds = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and _as_bool(config.get("synchronous_mode")) else None


def split_listen(listen: str) -> Tuple[str, int]:
    """'addr[,addr...]:port' -> ('addr,addr', port)."""
    listen = str(listen).strip()
    if ":" not in listen:
        raise ManagerError(f"postgresql.listen {listen!r} has no port")
    addresses, _, port = listen.rpartition(":")
    try:
        return addresses, int(port)
    except ValueError as exc:
        raise ManagerError(f"postgresql.listen {listen!r}: bad port") from exc


def _credentials(section: Mapping[str, Any], default_user: str) -> Credentials:
    section = dict(section or {})
    username = str(section.pop("username", None) or default_user)
    password = section.pop("password", None)
    extra = {str(k): str(v) for k, v in section.items() if v is not None}
    return Credentials(username, None if password is None else str(password), extra)


@dataclass(frozen=True)
class PgSettings:
    name: str
    scope: str
    data_dir: str
    config_dir: str
    listen_addresses: str
    port: int
    connect_address: str
    database: str
    superuser: Credentials
    replication: Credentials
    rewind: Credentials
    parameters: Mapping[str, Any]
    layout: Layout
    binaries: Mapping[str, str]
    pgpass: str
    use_pg_rewind: bool
    use_slots: bool
    remove_data_directory_on_rewind_failure: bool
    remove_data_directory_on_diverged_timelines: bool
    basebackup: Any
    recovery_conf: Mapping[str, Any]
    pg_ctl_timeout: float
    initdb: Any
    bootstrap_hba: List[str]
    bootstrap_users: Mapping[str, Any]
    server_log: Optional[str]
    callbacks: Mapping[str, Any] = field(default_factory=dict)
    # postgresql.pg_hba / pg_ident: whole file contents, written into the file
    # hba_file / ident_file names (QHB: qhb_hba.conf); None = leave the file alone.
    pg_hba: Optional[List[str]] = None
    pg_ident: Optional[List[str]] = None
    # Local connections (superuser / replication) through the socket directory.
    use_unix_socket: bool = False
    use_unix_socket_repl: bool = False
    proxy_address: Optional[str] = None  # published as proxy_url in the member key
    custom_conf: Optional[str] = None  # included by the main config instead of <base>.base.conf
    pre_promote: Optional[str] = None  # fencing command run before promote; non-zero exit refuses it
    # primary_stop_timeout (dynamic): in synchronous mode, the longest wait for a primary's
    # postmaster to stop before it is killed; None = pg_ctl_timeout as usual.
    primary_stop_timeout: Optional[float] = None

    @property
    def socket_directory(self) -> Optional[str]:
        """The first absolute directory of unix_socket_directories (None: none set)."""
        value = self.parameters.get("unix_socket_directories")
        for directory in str(value or "").split(","):
            if directory.strip().startswith("/"):
                return directory.strip()
        return None

    @property
    def local_connect_host(self) -> str:
        """Host of the daemon's own connections: the socket directory with use_unix_socket
        (TCP when no absolute socket directory is set, as 3.0.2 falls back)."""
        return (self.socket_directory if self.use_unix_socket else None) or self.local_host

    @property
    def local_replication_host(self) -> str:
        """The same for local replication connections (use_unix_socket_repl)."""
        return (self.socket_directory if self.use_unix_socket_repl else None) or self.local_host
    # bootstrap.method with a command (None: initdb), bootstrap.post_bootstrap / post_init,
    # postgresql.create_replica_methods, and what was wrong with them (logged at start).
    bootstrap_method: Optional[CustomBootstrap] = None
    post_bootstrap: Optional[str] = None
    replica_methods: Tuple[ReplicaMethod, ...] = (ReplicaMethod(BASEBACKUP),)
    method_warnings: Tuple[str, ...] = ()
    standby_cluster: Optional[StandbyCluster] = None  # dynamic standby_cluster (core.standby)
    standby_replica_methods: Tuple[ReplicaMethod, ...] = (ReplicaMethod(BASEBACKUP),)

    @property
    def local_host(self) -> str:
        """Address for connections to the local server."""
        first = self.listen_addresses.split(",")[0].strip()
        if not first or first in ("*", "0.0.0.0"):
            return "127.0.0.1"
        if first == "::":
            return "::1"
        return first

    @property
    def connect_host_port(self) -> Tuple[str, int]:
        host, _, port = self.connect_address.rpartition(":")
        return host, int(port)

    @property
    def conn_url(self) -> str:
        return f"postgres://{self.connect_address}/{self.database}"

    @property
    def proxy_url(self) -> Optional[str]:
        return f"postgres://{self.proxy_address}/{self.database}" if self.proxy_address else None


def load_settings(config: Mapping[str, Any]) -> PgSettings:
    pg: Mapping[str, Any] = config.get("postgresql") or {}
    bootstrap: Mapping[str, Any] = config.get("bootstrap") or {}
    if not pg.get("data_dir"):
        raise ManagerError("postgresql.data_dir is not set")
    if not pg.get("listen"):
        raise ManagerError("postgresql.listen is not set")
    data_dir = os.path.abspath(str(pg["data_dir"]))
    config_dir = os.path.abspath(str(pg.get("config_dir") or data_dir))
    addresses, port = split_listen(str(pg["listen"]))
    connect_address = pg.get("connect_address")
    if not connect_address:
        first = addresses.split(",")[0].strip()
        host = "localhost" if any(a.strip() in _LOCAL_HOSTS for a in addresses.split(",")) else first
        connect_address = f"{host}:{port}"
    parameters: Dict[str, Any] = dict(pg.get("parameters") or {})
    custom_hba = pg.get("hba_file") or parameters.get("hba_file")
    custom_ident = pg.get("ident_file") or parameters.get("ident_file")
    hba = str(custom_hba or DEFAULT_HBA_FILE)
    ident = str(custom_ident or DEFAULT_IDENT_FILE)
    parameters.pop("hba_file", None)
    parameters.pop("ident_file", None)
    layout = Layout(
        data_dir=data_dir,
        config_dir=config_dir,
        config_base_name=str(pg.get("config_base_name") or DEFAULT_CONFIG_BASE_NAME),
        hba_name=hba,
        ident_name=ident,
    )
    auth: Mapping[str, Any] = pg.get("authentication") or {}
    superuser = _credentials(auth.get("superuser") or {}, "postgres")
    replication = _credentials(auth.get("replication") or {}, "replicator")
    rewind = _credentials(auth.get("rewind") or {}, superuser.username) if auth.get("rewind") else superuser
    hba_lines = bootstrap.get("qhb_hba") or bootstrap.get("pg_hba") or []
    method, bootstrap_warnings = custom_bootstrap(bootstrap)
    methods, replica_warnings = replica_methods(pg)
    post_script = bootstrap.get("post_bootstrap") or bootstrap.get("post_init")
    standby, standby_problems = standby_cluster(config.get("standby_cluster"))
    standby_methods = methods
    if standby is not None and standby.create_replica_methods:
        standby_methods, more = replica_methods(dict(pg, create_replica_methods=list(standby.create_replica_methods)))
        replica_warnings = replica_warnings + more
    return PgSettings(
        name=str(config.get("name") or ""),
        scope=str(config.get("scope") or ""),
        data_dir=data_dir,
        config_dir=config_dir,
        listen_addresses=addresses,
        port=port,
        connect_address=str(connect_address),
        database=str(pg.get("database") or "postgres"),
        superuser=superuser,
        replication=replication,
        rewind=rewind,
        parameters=parameters,
        layout=layout,
        binaries=resolve_binaries(str(pg.get("bin_dir") or ""), pg.get("bin_name")),
        pgpass=os.path.expanduser(str(pg.get("pgpass") or "~/pgpass")),
        use_pg_rewind=_as_bool(pg.get("use_pg_rewind")),
        use_slots=_as_bool(pg.get("use_slots"), True),
        remove_data_directory_on_rewind_failure=_as_bool(pg.get("remove_data_directory_on_rewind_failure")),
        remove_data_directory_on_diverged_timelines=_as_bool(pg.get("remove_data_directory_on_diverged_timelines")),
        basebackup=pg.get("basebackup"),
        recovery_conf=dict(pg.get("recovery_conf") or {}),
        pg_ctl_timeout=float(pg.get("pg_ctl_timeout") or 60),
        initdb=bootstrap.get("initdb"),
        bootstrap_hba=[str(line) for line in hba_lines],
        bootstrap_users=dict(bootstrap.get("users") or {}),
        server_log=str(pg["server_log"]) if pg.get("server_log") else None,
        callbacks=dict(pg.get("callbacks") or {}),
        proxy_address=str(pg["proxy_address"]) if pg.get("proxy_address") else None,
        custom_conf=str(pg["custom_conf"]) if pg.get("custom_conf") else None,
        pre_promote=str(pg["pre_promote"]) if pg.get("pre_promote") else None,
        primary_stop_timeout=_stop_timeout(config),
        use_unix_socket=_as_bool(pg.get("use_unix_socket")),
        use_unix_socket_repl=_as_bool(pg.get("use_unix_socket_repl")),
        pg_hba=_lines(pg.get("pg_hba")),
        pg_ident=_lines(pg.get("pg_ident")),
        bootstrap_method=method,
        post_bootstrap=str(post_script) if post_script else None,
        replica_methods=methods,
        method_warnings=tuple(bootstrap_warnings + replica_warnings) + standby_problems,
        standby_cluster=standby,
        standby_replica_methods=standby_methods,
    )
