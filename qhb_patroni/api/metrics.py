"""`GET /metrics`: Prometheus text built from the node status document (spec 1.7). PURE."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..runtime.status import StatusView
from . import views

Status = Mapping[str, Any]


def _epoch(text: Any) -> float:
    """Seconds since the epoch of a `str(datetime)` timestamp; 0 when absent/unparsable."""
    if not text:
        return 0
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _xlog(status: Status, key: str) -> Any:
    return (status.get("xlog") or {}).get(key)


def _version_gauge(version: str) -> str:
    """3.0.2 -> 030002 (each component zero-padded to two digits)."""
    return "".join(part.zfill(2) for part in version.split("."))


# (name, type, help, value from (status document, view)) in 3.0.2's order.
METRICS: Tuple[Tuple[str, str, str, Callable[[Status, StatusView], Any]], ...] = (
    ("patroni_version", "gauge", "Patroni semver without periods.",
     lambda s, v: _version_gauge(v.version)),
    ("patroni_postgres_running", "gauge", "Value is 1 if Postgres is running, 0 otherwise.",
     lambda s, v: int(s.get("state") == "running")),
    ("patroni_postmaster_start_time", "gauge", "Epoch seconds since Postgres started.",
     lambda s, v: _epoch(s.get("postmaster_start_time"))),
    ("patroni_master", "gauge", "Value is 1 if this node is the leader, 0 otherwise.",
     lambda s, v: int(s.get("role") in ("master", "primary"))),
    ("patroni_primary", "gauge", "Value is 1 if this node is the leader, 0 otherwise.",
     lambda s, v: int(s.get("role") in ("master", "primary"))),
    ("patroni_xlog_location", "counter",
     "Current location of the Postgres transaction log, 0 if this node is not the leader.",
     lambda s, v: _xlog(s, "location") or 0),
    ("patroni_standby_leader", "gauge", "Value is 1 if this node is the standby_leader, 0 otherwise.",
     lambda s, v: int(s.get("role") == "standby_leader")),
    ("patroni_replica", "gauge", "Value is 1 if this node is a replica, 0 otherwise.",
     lambda s, v: int(s.get("role") == "replica")),
    ("patroni_sync_standby", "gauge", "Value is 1 if this node is a sync standby replica, 0 otherwise.",
     lambda s, v: int(bool(s.get("sync_standby")))),
    ("patroni_xlog_received_location", "counter",
     "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
     lambda s, v: _xlog(s, "received_location") or 0),
    ("patroni_xlog_replayed_location", "counter",
     "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
     lambda s, v: _xlog(s, "replayed_location") or 0),
    ("patroni_xlog_replayed_timestamp", "gauge",
     "Current timestamp of the replayed Postgres transaction log, 0 if null.",
     lambda s, v: _epoch(_xlog(s, "replayed_timestamp"))),
    ("patroni_xlog_paused", "gauge", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
     lambda s, v: int(_xlog(s, "paused") is True)),
    ("patroni_postgres_server_version", "gauge", "Version of Postgres (if running), 0 otherwise.",
     lambda s, v: s.get("server_version") or 0),
    ("patroni_cluster_unlocked", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.",
     lambda s, v: int(bool(s.get("cluster_unlocked")))),
    ("patroni_failsafe_mode_is_active", "gauge", "Value is 1 if failsafe mode is active, 0 if inactive.",
     lambda s, v: int(bool(s.get("failsafe_mode_is_active")))),
    ("patroni_postgres_timeline", "counter", "Postgres timeline of this node (if running), 0 otherwise.",
     lambda s, v: s.get("timeline") or 0),
    ("patroni_dcs_last_seen", "gauge", "Epoch timestamp when DCS was last contacted successfully by Patroni.",
     lambda s, v: s.get("dcs_last_seen", 0)),
    ("patroni_pending_restart", "gauge", "Value is 1 if the node needs a restart, 0 otherwise.",
     lambda s, v: int(bool(v.server.pending_restart))),
    ("patroni_is_paused", "gauge", "Value is 1 if auto failover is disabled, 0 otherwise.",
     lambda s, v: int(bool(v.paused))),
)  # fmt: skip

# QUIRK kept from 3.0.2: this one is written with a space before its label set.
SPACED = frozenset({"patroni_postgres_server_version"})


def render_metrics(view: StatusView, now: float, status: Optional[Dict[str, Any]] = None) -> str:
    doc = status if status is not None else views.node_status(view, now)
    labels = '{scope="%s"}' % view.scope.replace("\\", "\\\\").replace('"', '\\"')  # noqa: UP031
    lines: List[str] = []
    for name, kind, text, value in METRICS:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        sep = " " if name in SPACED else ""
        lines.append(f"{name}{sep}{labels} {value(doc, view)}")
    return "\n".join(lines) + "\n"
