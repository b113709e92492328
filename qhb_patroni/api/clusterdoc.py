"""The cluster-wide documents: `GET /cluster`, `GET /history` and the helpers they
share with the node documents.  They depend on the DCS view only (core.model), so
patronictl, which renders `list` from the same document, imports this module without
the node status and HA types that views.py needs."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from ..core.model import ClusterView, Member

# ---- small shared helpers ---------------------------------------------------


def is_standby_cluster_config(value: Any) -> bool:
    """A `standby_cluster` section describes a standby cluster when it names a
    host, a port or a restore_command (Patroni's test)."""
    return isinstance(value, Mapping) and bool(
        value.get("host") or value.get("port") or value.get("restore_command")
    )


def cluster_is_standby(cluster: Optional[ClusterView]) -> bool:
    if cluster is None or cluster.config is None:
        return False
    return is_standby_cluster_config(cluster.config.data.get("standby_cluster"))


def synchronous_mode(cluster: Optional[ClusterView]) -> bool:
    if cluster is None or cluster.config is None:
        return False
    value = cluster.config.data.get("synchronous_mode")
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1")
    return bool(value)


def in_sync_list(cluster: Optional[ClusterView], name: str) -> bool:
    """`name` is one of the standbys listed in `/sync`."""
    if cluster is None or cluster.sync is None:
        return False
    return name in cluster.sync.sync_standby


def is_sync_standby(cluster: Optional[ClusterView], name: str) -> bool:
    """Synchronous mode is on and the node is listed in `/sync`."""
    return synchronous_mode(cluster) and in_sync_list(cluster, name)


def conn_host_port(conn_url: Optional[str]) -> Dict[str, Any]:
    """{"host": h, "port": p} from `postgres://h:p/db`; port defaults to 5432 and
    is omitted when it cannot be parsed; {} when there is no host."""
    if not conn_url:
        return {}
    try:
        parts = urlsplit(conn_url)
        host = parts.hostname
    except ValueError:
        return {}
    if not host:
        return {}
    out: Dict[str, Any] = {"host": host}
    try:
        out["port"] = int(parts.port or 5432)
    except ValueError:
        pass
    return out


# ---- GET /cluster and /history ---------------------------------------------


def member_role(cluster: ClusterView, member: Member) -> str:
    if cluster.leader is not None and member.name == cluster.leader.name:
        return "standby_leader" if cluster_is_standby(cluster) else "leader"
    if in_sync_list(cluster, member.name):  # 3.0.2: regardless of synchronous_mode
        return "sync_standby"
    return "replica"


_OPTIONAL_MEMBER_KEYS = ("timeline", "pending_restart", "scheduled_restart", "tags")


def member_json(cluster: ClusterView, member: Member) -> Dict[str, Any]:
    data = member.data
    out: Dict[str, Any] = {
        "name": member.name,
        "role": member_role(cluster, member),
        "state": data.get("state", member.state or ""),
        "api_url": member.api_url,
    }
    out.update(conn_host_port(member.conn_url))
    for key in _OPTIONAL_MEMBER_KEYS:
        if key in data:
            out[key] = data[key]
    is_leader = cluster.leader is not None and member.name == cluster.leader.name
    if not is_leader:
        lsn = member.xlog_location if member.xlog_location is not None else data.get("xlog_location")
        if lsn is None:
            out["lag"] = "unknown"
        else:
            try:
                out["lag"] = max(0, int(cluster.last_lsn or 0) - int(lsn))
            except (TypeError, ValueError):
                out["lag"] = "unknown"
    return out


def cluster_json(cluster: ClusterView) -> Dict[str, Any]:
    """The `GET /cluster` document (spec 1.6)."""
    members = sorted((member_json(cluster, m) for m in cluster.members), key=lambda m: str(m["name"]))
    doc: Dict[str, Any] = {"members": members}
    if cluster.paused:
        doc["pause"] = True
    failover = cluster.failover
    if failover is not None and failover.scheduled_at is not None:
        switchover: Dict[str, Any] = {"at": failover.scheduled_at.isoformat()}
        if failover.leader:
            switchover["from"] = failover.leader
        if failover.candidate:
            switchover["to"] = failover.candidate
        doc["scheduled_switchover"] = switchover
    return doc


def history_json(cluster: Optional[ClusterView]) -> List[List[Any]]:
    if cluster is None or not cluster.history:
        return []
    return [list(line) for line in cluster.history]
