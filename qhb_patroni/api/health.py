"""Health checks and probes (spec 1.4, 1.5). PURE: (status view, now, path, query) -> code + body.

The primary/leader answers are based on owning the leader lock (StatusView.holds_lock):
a node promoted by hand without the lock answers 503 on /primary, as Patroni 3.0.2
does.  /primary also needs the database to be running out of recovery (3.0.2 answers
200 on the lock alone, also while the promotion is still under way).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from ..core.model import PRIMARY_ROLES, ROLE_STANDBY_LEADER
from ..runtime.status import StatusView
from . import views

OK = 200
UNAVAILABLE = 503

Query = Mapping[str, str]  # first value of every query parameter
HealthResult = Tuple[int, Optional[Dict[str, Any]]]

_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$")
MAX_LAG = 2**64 - 1  # WAL positions are 64-bit: a larger lag cannot be compared with one


class QueryError(ValueError):
    """A query parameter that cannot be honoured (answered 400, never 500)."""


def parse_size(value: Optional[str]) -> Optional[int]:
    """`lag=` value in bytes: an integer, optionally with a 1024-based unit
    (B, kB, MB, GB, TB). None when missing or unparsable (= no limit, as 3.0.2);
    QueryError when it is a number too large for a WAL position (2**64 - 1 bytes)."""
    if value is None:
        return None
    m = _SIZE_RE.match(value)
    if m is None:
        return None
    digits = m.group(1).lstrip("0") or "0"
    if len(digits) > 20:  # checked before int(): thousands of digits must not cost a conversion
        raise QueryError(f"lag value too large: {value[:40]!r}")
    size = int(digits) * _UNITS[m.group(2) or "B"]
    if size > MAX_LAG:
        raise QueryError(f"lag value too large: {value[:40]!r}")
    return size


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1")
    return bool(value)


@dataclass(frozen=True)
class Codes:
    """The intermediate codes every health check is chosen from."""

    replica: int
    leader: int
    primary: int
    standby_leader: int
    sync_standby: bool
    dcs_present: bool


def compute_codes(view: StatusView, now: float, status: Mapping[str, Any], query: Query) -> Codes:
    dcs = view.dcs_view(now)
    role = status.get("role")
    state = status.get("state")

    leader_optime = dcs.last_lsn if dcs is not None else 0
    replayed = (status.get("xlog") or {}).get("replayed_location") or 0
    max_lag = parse_size(query.get("lag"))
    if max_lag is None:
        max_lag = sys.maxsize
    lagging = bool(leader_optime) and leader_optime > replayed + max_lag

    replica = (
        OK
        if not _truthy(view.tags.get("noloadbalance", False))
        and not lagging
        and role == "replica"
        and state == "running"
        else UNAVAILABLE
    )

    if dcs is None and view.paused:
        leader = OK if role in PRIMARY_ROLES or role == ROLE_STANDBY_LEADER else UNAVAILABLE
        primary = OK if role in PRIMARY_ROLES else UNAVAILABLE
        standby_leader = OK if role == ROLE_STANDBY_LEADER else UNAVAILABLE
    elif view.holds_lock(now):
        leader = OK
        if views.cluster_is_standby(view.cluster):
            primary = replica = UNAVAILABLE
            standby_leader = OK if role in ("replica", ROLE_STANDBY_LEADER) else UNAVAILABLE
        else:
            # Stricter than 3.0.2 (which answers on the lock alone): only while the database
            # accepts writes, so a balancer never sends writes to a node still promoting.
            primary = OK if role in PRIMARY_ROLES and state == "running" else UNAVAILABLE
            standby_leader = UNAVAILABLE
    else:
        leader = primary = standby_leader = UNAVAILABLE

    return Codes(
        replica=replica,
        leader=leader,
        primary=primary,
        standby_leader=standby_leader,
        sync_standby=views.is_sync_standby(dcs, view.name),
        dcs_present=dcs is not None,
    )


def _tags_match(view: StatusView, query: Query) -> bool:
    for key, wanted in query.items():
        if not key.startswith("tag_"):
            continue
        actual = view.tags.get(key[len("tag_"):])
        if actual is None:
            return False
        if not isinstance(actual, str):
            actual = str(actual).lower()
        if actual != wanted:
            return False
    return True


def dispatch(codes: Codes, path: str, state: Any) -> Tuple[int, bool]:
    """Path -> (code, apply tag filters), first match wins (spec 1.4 table)."""
    if "standby_leader" in path or "standby-leader" in path:
        return codes.standby_leader, False
    if "leader" in path:
        return codes.leader, False
    if "master" in path or "primary" in path or "read-write" in path:
        return codes.primary, False
    if "replica" in path:
        return codes.replica, True
    if "read-only" in path and "sync" not in path:
        if OK in (codes.primary, codes.standby_leader):
            return OK, True
        return codes.replica, True
    if "health" in path:
        return (OK if state == "running" else UNAVAILABLE), True
    if codes.dcs_present:
        if path in ("/sync", "/synchronous"):
            return (codes.replica if codes.sync_standby else UNAVAILABLE), True
        if path in ("/async", "/asynchronous"):
            return (codes.replica if not codes.sync_standby else UNAVAILABLE), True
        if path in ("/read-only-sync", "/read-only-synchronous"):
            if OK in (codes.primary, codes.standby_leader):
                return OK, True
            return (codes.replica if codes.sync_standby else UNAVAILABLE), True
    return UNAVAILABLE, True


def health_check(view: StatusView, now: float, path: str, query: Query) -> HealthResult:
    """Status code and JSON status document for a health-check path (spec 1.4).
    `path` is the URL path without the query string; `/` means `/primary`.
    Raises QueryError for a query that cannot be honoured (a `lag=` too large)."""
    if path == "/":
        path = "/primary"
    status = views.node_status(view, now)
    codes = compute_codes(view, now, status, query)
    code, filter_tags = dispatch(codes, path, status.get("state"))
    if filter_tags and code == OK and not _tags_match(view, query):
        code = UNAVAILABLE
    return code, status


def liveness(view: StatusView, now: float) -> int:
    """200 while the HA loop keeps running: paused, or the next scheduled cycle
    is less than ttl (running primary) / 2*ttl (everyone else) overdue.
    Before the loop published its first schedule (`next_cycle_at` None) the
    node counts as alive, as Patroni's start-up value does."""
    if view.paused or view.next_cycle_at is None:
        return OK
    server = view.server
    is_primary = server.state == "running" and views.reported_role(view) in PRIMARY_ROLES
    threshold = view.ttl * (1 if is_primary else 2)
    return OK if now < view.next_cycle_at + threshold else UNAVAILABLE


def readiness(view: StatusView, now: float) -> int:
    """200 if the node holds the lock, or its database runs and the DCS view is valid."""
    if view.holds_lock(now):
        return OK
    if view.server.state == "running" and view.dcs_view(now) is not None:
        return OK
    return UNAVAILABLE


def probe(view: StatusView, now: float, path: str, query: Query) -> HealthResult:
    """Any health-ish GET path, including the status-line-only probes (body None)."""
    first = path.lstrip("/").split("/", 1)[0]
    if first == "liveness":
        return liveness(view, now), None
    if first == "readiness":
        return readiness(view, now), None
    return health_check(view, now, path, query)
