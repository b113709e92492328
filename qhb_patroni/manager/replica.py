"""Replicas: clone with the base backup tool, and follow a leader (or nobody)."""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ..core.local import STATE_CREATING_REPLICA, STATE_STOPPED
from ..core.methods import ReplicaMethod, methods_to_try
from ..core.model import ROLE_REPLICA, ROLE_STANDBY_LEADER, ROLE_UNINITIALIZED
from . import conffiles, durable
from .bootstrap import arrange_config_files
from .connection import host_port_from_url
from .files import empty_directory
from .process import TaskCancelled, clean_env, command_words, run_tool, run_watched
from .server import LocalServer
from .settings import ManagerError
from .wipe import is_empty

log = logging.getLogger(__name__)

CLONE_ATTEMPTS = 2
CLONE_RETRY_DELAY = 5.0
METHOD_TIMEOUT = 24 * 3600.0  # bound of a custom replica method (a restore may take hours)
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


def clone(server: LocalServer, source_url: Optional[str], retry_delay: float = CLONE_RETRY_DELAY,
          timeout: float = METHOD_TIMEOUT) -> str:
    """Create the data directory with postgresql.create_replica_methods, in order, the
    first success winning; returns the method's name.  Without a source only the
    methods marked no_leader are tried.  When all fail the directory is left empty."""
    s = server.settings
    host_port = host_port_from_url(source_url) if source_url else None
    remote = s.standby_cluster is not None and server.follows_remote(host_port)
    configured = s.standby_replica_methods if remote else s.replica_methods
    methods = methods_to_try(configured, have_source=host_port is not None)
    if not methods:
        raise ManagerError("no member to clone from and no method that works without a leader")
    server.state = STATE_CREATING_REPLICA
    server.role = ROLE_UNINITIALIZED
    server.synced_copy = False
    connstring = ""
    if host_port is not None:
        server.write_replication_pgpass(host_port)
        connstring = source_dsn(server, host_port)
    errors: List[str] = []
    # What a failed method leaves in a directory that was empty is ours to clear, even
    # when it does not look like a data directory yet.
    ours = is_empty(s.data_dir)

    def clear() -> None:
        empty_directory(s.data_dir, ours=ours)

    for method in methods:
        try:
            if method.builtin:
                assert host_port is not None
                # A copy already on disk needs no file-by-file sync at its first start.
                server.synced_copy = _basebackup(server, host_port, connstring, retry_delay, clear)
            else:
                _custom_method(server, method, connstring, timeout, clear)
        except TaskCancelled:
            clear()  # never leave a half copy behind
            server.state = STATE_STOPPED
            raise  # cancelled on purpose (a forced reinitialize): no second attempt
        except (ManagerError, OSError) as exc:
            log.error("Error creating replica using method %s: %s", method.name, exc)
            errors.append(f"{method.name}: {exc}")
            continue
        log.info("replica has been created using %s", method.name)
        server.state = STATE_STOPPED
        return method.name
    clear()
    server.state = STATE_STOPPED
    where = f" from {host_port[0]}:{host_port[1]}" if host_port else " without leader"
    raise ManagerError(f"clone{where} failed: {'; '.join(errors)}")


def _basebackup(server: LocalServer, host_port: Tuple[str, int], dsn: str, retry_delay: float,
                clear: Callable[[], None]) -> bool:
    """The base backup tool, up to CLONE_ATTEMPTS times, emptying the directory first.
    The copy is on disk when this returns True (the tool's --no-sync and one syncfs per
    file system where that is usable, manager/durable.py; else the tool's own sync);
    False when the operator's options asked for --no-sync."""
    s = server.settings
    options = conffiles.basebackup_options(s.basebackup)
    own_no_sync = "--no-sync" in options
    flush = server.flush_instead_of_sync("basebackup")
    cmd = [
        server.bin["basebackup"],
        f"--pgdata={s.data_dir}",
        "-X",
        "stream",
        f"--dbname={dsn}",
        *options,
        *(["--no-sync"] if flush and not own_no_sync else []),
    ]
    env = dict(clean_env(), PGPASSFILE=s.pgpass)
    error = "not attempted"
    for attempt in range(CLONE_ATTEMPTS):
        if attempt:
            time.sleep(retry_delay)
        clear()
        try:
            run_tool(cmd, timeout=24 * 3600, env=env)
            if flush:
                durable.flush(s.data_dir)
            return flush or not own_no_sync
        except TaskCancelled:
            raise
        except OSError as exc:
            error = f"flushing the copy: {exc}"
        except ManagerError as exc:
            error = str(exc)
    raise ManagerError(f"{host_port[0]}:{host_port[1]}: {error}")


def _custom_method(server: LocalServer, method: ReplicaMethod, connstring: str, timeout: float,
                   clear: Callable[[], None]) -> None:
    """postgresql.<method>: `<command> [--key=value ...] --scope --role --datadir --connstring`,
    into an emptied data directory unless keep_data."""
    s = server.settings
    key = f"postgresql.{method.name}.command"
    words = command_words(key, method.command)
    if not method.keep_data:
        clear()
    cmd = words + method.args(s.scope, s.data_dir, connstring)
    env = dict(clean_env(), PGPASSFILE=s.pgpass)
    try:
        rc, _, err = run_watched(cmd, timeout, env)
    except TaskCancelled:
        raise
    except ManagerError as exc:
        raise ManagerError(f"{key}: {exc}") from exc
    if rc != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:]
        detail = f": {tail[0]}" if tail else ""
        raise ManagerError(f"{key} {method.command} exited with code={rc}{detail}")
    if not os.path.exists(server.layout.pg_control):
        raise ManagerError(f"{key} {method.command} left no database cluster in {s.data_dir}")
    arrange_config_files(server, append_hba=False)


def follow(server: LocalServer, leader_url: Optional[str]) -> bool:
    """Point the recovery settings at `leader_url` (None = nobody) and get the
    server running as a standby: reload when only conninfo/slot changed, restart
    when it runs as a primary or other recovery settings changed, start when stopped."""
    host_port = host_port_from_url(leader_url) if leader_url else None
    previous = server.recovery
    server.set_following(host_port)
    desired: Dict[str, str] = dict(server.recovery or {})
    # A standby cluster's member following the remote primary is its standby leader.
    server.role = ROLE_STANDBY_LEADER if server.follows_remote(host_port) else ROLE_REPLICA
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
