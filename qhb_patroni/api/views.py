"""Patroni 3.0.2 JSON shapes built from published data (PURE: no I/O, no clock).

* `node_status(view, now)`   -> body of `GET /patroni` and of every JSON health check (spec 1.3)
* `cluster_json(cluster)`, `history_json(cluster)` -> `GET /cluster`, `GET /history`: they live in
  clusterdoc.py (patronictl imports them from there) and are re-exported here
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, Optional

from ..core.model import ROLE_MASTER, ROLE_REPLICA, ROLE_STANDBY_LEADER
from ..core.operator import RestartCommand
from ..runtime.status import ServerStatus, StatusView
from .clusterdoc import (
    cluster_is_standby,
    cluster_json,
    conn_host_port,
    history_json,
    in_sync_list,
    is_standby_cluster_config,
    is_sync_standby,
    member_json,
    member_role,
    synchronous_mode,
)

__all__ = [
    "cluster_is_standby", "cluster_json", "conn_host_port", "history_json", "in_sync_list",
    "is_standby_cluster_config", "is_sync_standby", "member_json", "member_role", "node_status",
    "reported_role", "reported_state", "scheduled_restart_json", "stale_for", "synchronous_mode",
    "watchdog_json", "xlog_json",
]

# ---- GET /patroni -----------------------------------------------------------


def reported_role(view: StatusView) -> str:
    """`role` as 3.0.2 reports it: from pg_is_in_recovery() when the query
    worked (a recovering standby leader keeps its internal role), else the
    internal role."""
    server = view.server
    if server.query_ok and server.in_recovery is not None:
        if not server.in_recovery:
            return ROLE_MASTER
        return ROLE_STANDBY_LEADER if server.role == ROLE_STANDBY_LEADER else ROLE_REPLICA
    return server.role


def reported_state(view: StatusView) -> str:
    server = view.server
    if server.state == "running" and not server.query_ok:
        return "unknown"
    return server.state


def xlog_json(view: StatusView) -> Dict[str, Any]:
    server = view.server
    if server.in_recovery:
        received = server.received_location
        return {
            "received_location": received if received is not None else server.replayed_location,
            "replayed_location": server.replayed_location,
            "replayed_timestamp": server.replayed_timestamp,
            "paused": bool(server.replay_paused),
        }
    return {"location": server.wal_location}


def node_status(view: StatusView, now: float) -> Dict[str, Any]:
    """The node status document (spec 1.3)."""
    server = view.server
    dcs = view.dcs_view(now)
    role = reported_role(view)
    doc: Dict[str, Any] = {"state": reported_state(view)}
    if server.query_ok:
        if server.postmaster_start_time is not None:
            doc["postmaster_start_time"] = server.postmaster_start_time
        doc["role"] = role
        if server.server_version is not None:
            doc["server_version"] = server.server_version
        doc["xlog"] = xlog_json(view)
        if role == ROLE_REPLICA and is_sync_standby(dcs, view.name):
            doc["sync_standby"] = True
        doc["timeline"] = server.timeline
        if server.replication:
            doc["replication"] = [dict(r) for r in server.replication]
    else:
        doc["role"] = role
    if dcs is None or dcs.leader is None:
        doc["cluster_unlocked"] = True
    if view.failsafe_active(now):
        doc["failsafe_mode_is_active"] = True
    doc["dcs_last_seen"] = int(view.dcs_last_seen)
    if view.tags:
        doc["tags"] = dict(view.tags)
    if server.sysid:
        doc["database_system_identifier"] = server.sysid
    if server.pending_restart:
        doc["pending_restart"] = True
    doc["patroni"] = {"version": view.version, "scope": view.scope}
    if view.scheduled_restart:
        doc["scheduled_restart"] = dict(view.scheduled_restart)
    if view.paused:
        doc["pause"] = True
    stale = stale_for(server, now)
    if stale is not None:
        doc["stale"] = stale
    doc.update(watchdog_json(view))
    return doc


# The SQL figures are sampled when a request finds them older than a second (runtime/sampler.py);
# older than this (a hung or very slow server) they are marked.
STALE_AFTER = 3.0
SAMPLED_FIELDS = ("postmaster_start_time", "role", "server_version", "xlog", "timeline", "replication",
                  "database_system_identifier", "pending_restart", "sync_standby")


def stale_for(server: ServerStatus, now: float) -> Optional[Dict[str, Any]]:
    """{"seconds": age, "fields": [...]} when the last answered query is older than
    STALE_AFTER (a hung or very slow server), None while the figures are fresh.  The
    state itself is never stale: a postmaster that exited is seen at once."""
    if server.sampled_at is None or not server.query_ok:
        return None
    age = now - server.sampled_at
    if age <= STALE_AFTER:
        return None
    return {"seconds": round(age, 1), "fields": list(SAMPLED_FIELDS)}


def watchdog_json(view: StatusView) -> Dict[str, Any]:
    """`watchdog_failed: true` (3.0.2: this node cannot lead) when watchdog.mode is
    required and the device cannot be used; plus, whenever the watchdog is on, a
    `watchdog` object saying whether it is armed and why it cannot be used."""
    dog = view.watchdog
    if dog.mode == "off":
        return {}
    doc: Dict[str, Any] = {"mode": dog.mode, "armed": dog.armed}
    if dog.timeout is not None:
        doc["timeout"] = dog.timeout
    if dog.error is not None:
        doc["error"] = dog.error
        if dog.mode == "automatic":
            doc["note"] = "running without a watchdog (watchdog.mode automatic)"
    out: Dict[str, Any] = {"watchdog": doc}
    if dog.mode == "required" and dog.error is not None:
        out["watchdog_failed"] = True
    return out


def scheduled_restart_json(
    schedule: _dt.datetime,
    command: Optional[RestartCommand],
    postgres_version: Optional[str] = None,
    with_start_time: bool = False,
) -> Dict[str, Any]:
    """A scheduled restart as 3.0.2 publishes it: the schedule (ISO) plus the filters that
    were given (role, postgres_version as given, restart_pending, timeout in seconds).
    The member key also carries the server's start time at scheduling
    (`with_start_time`); GET /patroni leaves it out."""
    doc: Dict[str, Any] = {"schedule": schedule.isoformat()}
    if command is not None and command.role:
        doc["role"] = command.role
    if postgres_version:
        doc["postgres_version"] = postgres_version
    if command is not None and command.restart_pending:
        doc["restart_pending"] = True
    if command is not None and command.timeout is not None:
        timeout = command.timeout
        doc["timeout"] = int(timeout) if float(timeout).is_integer() else timeout
    if with_start_time and command is not None and command.postmaster_start_time is not None:
        doc["postmaster_start_time"] = command.postmaster_start_time
    return doc
