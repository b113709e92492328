"""Immutable view of the cluster as decoded from the DCS.

Every DCS backend produces a `ClusterView` through the one key codec
(`qhb_patroni.dcs.keys`); the decision core and the REST API only ever see these
frozen objects.  `version` fields are opaque compare-and-swap tokens (etcd
modifiedIndex / mod_revision, Consul ModifyIndex) that must be handed back
unchanged on conditional writes.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

# Role values as Patroni 3.0.2 writes them (DCS member key and REST `role`).
ROLE_MASTER = "master"
ROLE_REPLICA = "replica"
ROLE_STANDBY_LEADER = "standby_leader"
ROLE_DEMOTED = "demoted"
ROLE_PROMOTED = "promoted"
ROLE_UNINITIALIZED = "uninitialized"
PRIMARY_ROLES = frozenset({ROLE_MASTER, "primary"})


def normalize_role(role: Optional[str]) -> Optional[str]:
    """Read 'primary' (Patroni 4.x) as 'master' (what 3.0.2 writes)."""
    return ROLE_MASTER if role == "primary" else role


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1")
    return bool(value)


@dataclass(frozen=True)
class Member:
    name: str
    conn_url: Optional[str] = None
    api_url: Optional[str] = None
    state: Optional[str] = None
    role: Optional[str] = None
    xlog_location: Optional[int] = None
    timeline: Optional[int] = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # the whole decoded JSON
    version: Optional[int] = None

    @property
    def nofailover(self) -> bool:
        return _truthy(self.tags.get("nofailover", False))

    @property
    def clonefrom(self) -> bool:
        return _truthy(self.tags.get("clonefrom", False))

    @property
    def nosync(self) -> bool:
        return _truthy(self.tags.get("nosync", False))

    @property
    def replicatefrom(self) -> Optional[str]:
        value = self.tags.get("replicatefrom")
        return str(value) if value else None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def host_port(self) -> Optional[Tuple[str, int]]:
        """(host, port) parsed from conn_url `postgres://host:port/db`."""
        if not self.conn_url:
            return None
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(self.conn_url)
            host = parts.hostname
            port = parts.port or 5432
        except ValueError:
            return None
        if not host:
            return None
        return host, port


@dataclass(frozen=True)
class Leader:
    name: str
    version: Optional[int] = None
    member: Optional[Member] = None  # the leader's member entry (placeholder if missing)
    session: Optional[str] = None  # backend lease/session id owning the key, when known


@dataclass(frozen=True)
class Failover:
    leader: Optional[str] = None
    candidate: Optional[str] = None
    scheduled_at: Optional[_dt.datetime] = None
    version: Optional[int] = None


@dataclass(frozen=True)
class SyncState:
    leader: Optional[str] = None
    sync_standby: Tuple[str, ...] = ()
    version: Optional[int] = None


@dataclass(frozen=True)
class ClusterConfig:
    data: Mapping[str, Any]
    version: Optional[int] = None

    @property
    def paused(self) -> bool:
        return _truthy(self.data.get("pause", False))


@dataclass(frozen=True)
class ClusterView:
    """Everything under `/<namespace>/<scope>/`, decoded."""

    initialize: Optional[str] = None  # None = key absent; "" = bootstrap in progress
    initialize_version: Optional[int] = None
    config: Optional[ClusterConfig] = None
    leader: Optional[Leader] = None
    members: Tuple[Member, ...] = ()
    failover: Optional[Failover] = None
    sync: Optional[SyncState] = None
    history: Optional[Tuple[Tuple[Any, ...], ...]] = None
    last_lsn: int = 0  # /status optime, else legacy /optime/leader, else 0
    slots: Mapping[str, int] = field(default_factory=dict)  # /status slots
    failsafe: Optional[Mapping[str, str]] = None
    status_version: Optional[int] = None
    watch_index: Optional[int] = None  # backend hint for watching the leader key
    # The raw version of /failover (also when its value decodes to no failover, e.g. a
    # cleared "{}"): what the lock holder's watch of that key starts from.
    failover_version: Optional[int] = None

    def member(self, name: str) -> Optional[Member]:
        for m in self.members:
            if m.name == name:
                return m
        return None

    @property
    def is_unlocked(self) -> bool:
        return self.leader is None

    @property
    def paused(self) -> bool:
        return self.config is not None and self.config.paused

    @property
    def has_valid_initialize(self) -> bool:
        """A system identifier is at least 10 digits (Patroni's test) and fits the
        64 bits pg_control holds: a longer number is garbage, not another cluster."""
        value = self.initialize or ""
        return 10 <= len(value) <= 20 and value.isascii() and value.isdigit() and int(value) < 2**64

    @property
    def timeline(self) -> int:
        """Cluster timeline derived from /history: last line's TL + 1, or 1 when empty."""
        if not self.history:
            return 1
        try:
            return int(self.history[-1][0]) + 1
        except (TypeError, ValueError, IndexError):
            return 1


EMPTY_CLUSTER = ClusterView()
