"""Replicas: clone with the base backup tool, and follow a leader (or nobody)."""
from __future__ import annotations

import time
from typing import Dict, Mapping, Optional, Tuple

from ..core.local import STATE_CREATING_REPLICA, STATE_STOPPED
from ..core.model import ROLE_REPLICA, ROLE_UNINITIALIZED
from . import conffiles
from .connection import host_port_from_url
from .files import empty_directory
from .process import TaskCancelled, clean_env, run_tool
from .server import LocalServer
from .settings import ManagerError

CLONE_ATTEMPTS = 2
CLONE_RETRY_DELAY = 5.0
# Recovery settings that a running PG 13+ standby re-reads on reload.
_RELOADABLE = frozenset({"primary_conninfo", "primary_slot_name"})


def source_dsn(server: LocalServer, host_port: Tuple[str, int]) -> str:
    """DSN for the base backup source: replication user, no password (pgpass)."""
    s = server.settings
    params = {
        "dbname": s.database,
        "user": s.replication.username,
        "host": host_port[0],
        "port": host_port[1],
    }
    for key, value in s.replication.extra.items():
        if key.startswith("ssl") or key in ("gssencmode", "channel_binding"):
            params[key] = value
    return conffiles.build_dsn(params)


def clone(server: LocalServer, source_url: Optional[str], retry_delay: float = CLONE_RETRY_DELAY) -> None:
    """Base backup from `source_url` into the (emptied) data directory."""
    if not source_url:
        raise ManagerError("no member to clone from and no method that works without a leader")
    s = server.settings
    host_port = host_port_from_url(source_url)
    server.state = STATE_CREATING_REPLICA
    server.role = ROLE_UNINITIALIZED
    server.write_replication_pgpass(host_port)
    cmd = [
        server.bin["basebackup"],
        f"--pgdata={s.data_dir}",
        "-X",
        "stream",
        f"--dbname={source_dsn(server, host_port)}",
        *conffiles.basebackup_options(s.basebackup),
    ]
    env = dict(clean_env(), PGPASSFILE=s.pgpass)
    error = "not attempted"
    for attempt in range(CLONE_ATTEMPTS):
        if attempt:
            time.sleep(retry_delay)
        empty_directory(s.data_dir)
        try:
            run_tool(cmd, timeout=24 * 3600, env=env)
            server.state = STATE_STOPPED
            return
        except TaskCancelled:
            empty_directory(s.data_dir)  # never leave a half copy behind
            server.state = STATE_STOPPED
            raise  # cancelled on purpose (a forced reinitialize): no second attempt
        except ManagerError as exc:
            error = str(exc)
    empty_directory(s.data_dir)
    server.state = STATE_STOPPED
    raise ManagerError(f"clone from {host_port[0]}:{host_port[1]} failed: {error}")


def follow(server: LocalServer, leader_url: Optional[str]) -> bool:
    """Point the recovery settings at `leader_url` (None = nobody) and get the
    server running as a standby: reload when only conninfo/slot changed, restart
    when it runs as a primary or other recovery settings changed, start when stopped."""
    host_port = host_port_from_url(leader_url) if leader_url else None
    previous = server.recovery
    server.set_following(host_port)
    desired: Dict[str, str] = dict(server.recovery or {})
    server.role = ROLE_REPLICA
    if not server.is_running():
        return server.start()
    if server.in_recovery() is not True:
        # Running as a primary (or not answering): only a restart makes it a standby.
        server.stop("fast")
        return server.start()
    if previous is None:
        previous = _running_recovery(server, desired)
    if previous == desired:
        server.write_config()
        return True
    if _same_except_reloadable(previous, desired) and server.major >= 13:
        return server.reload()
    server.stop("fast")
    return server.start()


def _running_recovery(server: LocalServer, desired: Mapping[str, str]) -> Dict[str, str]:
    """The recovery settings the running standby uses (pg_settings)."""
    try:
        rows = server.query(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (sorted(desired),)
        )
    except ManagerError:
        return {}
    current = {str(name): str(setting) for name, setting in rows}
    # Empty primary_conninfo / slot mean "not set": compare like absent keys.
    return {k: v for k, v in current.items() if v != "" or k not in _RELOADABLE}


def _same_except_reloadable(old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    keys = (set(old) | set(new)) - _RELOADABLE
    return all(old.get(k) == new.get(k) for k in keys)
