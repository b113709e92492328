"""The one key codec: Patroni 3.0.2's DCS key layout <-> `ClusterView`.

PURE: no I/O, no clock.  Every backend hands `decode` a `Snapshot` (values by
relative key name) and writes values produced by the `encode_*` functions, so
the key layout and the JSON shapes live only here.

Decoding is forgiving the way Patroni's is: unparsable JSON in any key reads as
empty, an absent subtree is an empty cluster.  Encoding produces byte-for-byte
the strings Patroni 3.0.2 writes (compact separators, its key order).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from qhb_patroni.core.model import (
    ClusterConfig,
    ClusterView,
    Failover,
    Leader,
    Member,
    SyncState,
    normalize_role,
)
from qhb_patroni.dcs.base import Node, Snapshot

# ---- key names, relative to the base path ----------------------------------
INITIALIZE = "initialize"
CONFIG = "config"
LEADER = "leader"
MEMBERS = "members/"
STATUS = "status"
LEGACY_OPTIME = "optime/leader"
FAILOVER = "failover"
SYNC = "sync"
HISTORY = "history"
FAILSAFE = "failsafe"

DEFAULT_NAMESPACE = "/service/"

# Member key order of Patroni 3.0.2 (spec 4.2); unknown keys follow in their own order.
MEMBER_KEY_ORDER: Tuple[str, ...] = (
    "conn_url",
    "api_url",
    "state",
    "role",
    "version",
    "proxy_url",
    "checkpoint_after_promote",
    "tags",
    "pending_restart",
    "xlog_location",
    "timeline",
    "scheduled_restart",
    "pause",
)


def member_key(name: str) -> str:
    return MEMBERS + name


def base_path(namespace: Optional[str], scope: str, group: Optional[int] = None) -> str:
    """`/<namespace>/<scope>` with slashes collapsed; default namespace `/service/`.

    `group` is the Citus group (`B/<group>`), None for a plain cluster."""
    ns = DEFAULT_NAMESPACE if namespace is None else namespace
    parts = ["", ns.strip("/"), scope]
    if group is not None:
        parts.append(str(group))
    return re.sub("/+", "/", "/".join(parts))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads_dict(value: Optional[str]) -> Dict[str, Any]:
    """JSON object or {} (unparsable or not an object)."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _to_int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---- dates ------------------------------------------------------------------
_FRACTION = re.compile(r"(\.\d+)")


def parse_iso(value: str) -> Optional[_dt.datetime]:
    """Parse an ISO-8601 timestamp as Patroni writes it (`datetime.isoformat()`),
    tolerating `Z`, a space separator and 1-9 fraction digits. None if unparsable."""
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = _FRACTION.search(text)
    if match:
        digits = match.group(1)[1:]
        text = text[: match.start()] + "." + (digits + "000000")[:6] + text[match.end():]
    # "+0100" -> "+01:00" (fromisoformat on 3.9 wants the colon)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


# ---- decoding ---------------------------------------------------------------
def parse_legacy_member(value: str) -> Dict[str, Any]:
    """Governor format: a connection URL whose `application_name` holds the api_url."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return {}
    api_url = None
    for name, val in parse_qsl(parts.query):
        if name == "application_name":
            api_url = val
            break
    conn_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment))
    return {"conn_url": conn_url, "api_url": api_url}


def decode_member(name: str, value: str, version: Optional[int] = None) -> Member:
    data = parse_legacy_member(value) if value.startswith("postgres") else _loads_dict(value)
    tags = data.get("tags")
    role = data.get("role")
    return Member(
        name=name,
        conn_url=data.get("conn_url") if isinstance(data.get("conn_url"), str) else None,
        api_url=data.get("api_url") if isinstance(data.get("api_url"), str) else None,
        state=data.get("state") if isinstance(data.get("state"), str) else None,
        role=normalize_role(role) if isinstance(role, str) else None,
        xlog_location=_to_int(data.get("xlog_location")),
        timeline=_to_int(data.get("timeline")),
        tags=dict(tags) if isinstance(tags, dict) else {},
        data=data,
        version=version,
    )


def decode_failover(value: str, version: Optional[int] = None) -> Optional[Failover]:
    """JSON `{"leader", "member", "scheduled_at"}` or legacy `leader:candidate`.

    A cleared failover (`{}`, empty, nothing set) decodes to None.  An unparsable
    `scheduled_at` also gives None: acting at once on a request meant for later
    would be worse than ignoring it."""
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        parts = [p.strip() for p in value.split(":")]
        leader = parts[0] or None
        candidate = (parts[1] or None) if len(parts) > 1 else None
        if leader or candidate:
            return Failover(leader=leader, candidate=candidate, version=version)
        return None
    if not isinstance(data, dict):
        return None
    leader = data.get("leader") or None
    candidate = data.get("member") or None
    scheduled_at: Optional[_dt.datetime] = None
    raw_at = data.get("scheduled_at")
    if raw_at:
        scheduled_at = parse_iso(str(raw_at))
        if scheduled_at is None:
            return None
    if not (leader or candidate or scheduled_at):
        return None
    return Failover(
        leader=str(leader) if leader else None,
        candidate=str(candidate) if candidate else None,
        scheduled_at=scheduled_at,
        version=version,
    )


def decode_sync(value: str, version: Optional[int] = None) -> SyncState:
    """`{"leader": .., "sync_standby": "a,b" | null}`; unparsable -> empty state."""
    data = _loads_dict(value)
    leader = data.get("leader")
    raw = data.get("sync_standby")
    names: List[str] = []
    if isinstance(raw, str):
        names = [n.strip() for n in raw.split(",")]
    elif isinstance(raw, list):
        names = [str(n).strip() for n in raw]
    return SyncState(
        leader=str(leader) if leader else None,
        sync_standby=tuple(n for n in names if n),
        version=version,
    )


def decode_history(value: str) -> Tuple[Tuple[Any, ...], ...]:
    try:
        lines = json.loads(value)
    except ValueError:
        return ()
    if not isinstance(lines, list):
        return ()
    return tuple(tuple(line) for line in lines if isinstance(line, list))


def decode_status(value: str) -> Tuple[Optional[int], Dict[str, int]]:
    """(optime, slots) from `{"optime": N, "slots": {..}}`."""
    data = _loads_dict(value)
    slots: Dict[str, int] = {}
    raw = data.get("slots")
    if isinstance(raw, dict):
        for name, lsn in raw.items():
            as_int = _to_int(lsn)
            if as_int is not None:
                slots[str(name)] = as_int
    return _to_int(data.get("optime")), slots


def decode_failsafe(value: str) -> Optional[Dict[str, str]]:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items()}


def decode(snapshot: Snapshot) -> ClusterView:
    """The whole cluster subtree -> ClusterView (see spec 4.1 "Reading")."""
    nodes = snapshot.nodes

    members: List[Member] = []
    for key, node in nodes.items():
        if key.startswith(MEMBERS):
            name = key[len(MEMBERS):]
            if name and "/" not in name:
                members.append(decode_member(name, node.value, node.version))
    members.sort(key=lambda m: m.name)

    leader: Optional[Leader] = None
    lnode = nodes.get(LEADER)
    if lnode is not None:
        lname = lnode.value
        member = next((m for m in members if m.name == lname), None) or Member(name=lname)
        leader = Leader(name=lname, version=lnode.version, member=member, session=lnode.ephemeral_owner)

    config: Optional[ClusterConfig] = None
    cnode = nodes.get(CONFIG)
    if cnode is not None:
        config = ClusterConfig(data=_loads_dict(cnode.value), version=cnode.version)

    init = nodes.get(INITIALIZE)
    fnode = nodes.get(FAILOVER)
    snode = nodes.get(SYNC)
    hnode = nodes.get(HISTORY)
    fsnode = nodes.get(FAILSAFE)

    last_lsn: Optional[int] = None
    slots: Dict[str, int] = {}
    status = nodes.get(STATUS)
    if status is not None:
        last_lsn, slots = decode_status(status.value)
    else:
        legacy = nodes.get(LEGACY_OPTIME)
        if legacy is not None:
            last_lsn = _to_int(legacy.value)

    return ClusterView(
        initialize=init.value if init is not None else None,
        initialize_version=init.version if init is not None else None,
        config=config,
        leader=leader,
        members=tuple(members),
        failover=decode_failover(fnode.value, fnode.version) if fnode is not None else None,
        sync=decode_sync(snode.value, snode.version) if snode is not None else None,
        history=decode_history(hnode.value) if hnode is not None else None,
        last_lsn=last_lsn or 0,
        slots=slots,
        failsafe=decode_failsafe(fsnode.value) if fsnode is not None else None,
        status_version=status.version if status is not None else None,
        watch_index=snapshot.index,
    )


# ---- encoding ---------------------------------------------------------------
def encode_member(data: Mapping[str, Any]) -> str:
    """Member JSON in Patroni 3.0.2's key order (spec 4.2), compact."""
    ordered: Dict[str, Any] = {}
    for key in MEMBER_KEY_ORDER:
        if key in data:
            ordered[key] = data[key]
    for key, val in data.items():
        if key not in ordered:
            ordered[key] = val
    return _dumps(ordered)


def encode_status(optime: int, slots: Optional[Mapping[str, int]] = None) -> str:
    value: Dict[str, Any] = {"optime": optime}
    if slots:
        value["slots"] = dict(slots)
    return _dumps(value)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, (_dt.datetime, _dt.date)) else str(value)


def encode_failover(
    leader: Optional[str] = None, candidate: Optional[str] = None, scheduled_at: Any = None
) -> str:
    """`{"leader":..,"member":..,"scheduled_at":..}` with only the set fields ({} clears)."""
    value: Dict[str, Any] = {}
    if leader:
        value["leader"] = leader
    if candidate:
        value["member"] = candidate
    if scheduled_at:
        value["scheduled_at"] = _iso(scheduled_at)
    return _dumps(value)


def encode_failover_data(data: Mapping[str, Any]) -> str:
    """Same as encode_failover from a dict with keys leader / member (or candidate) / scheduled_at."""
    return encode_failover(
        data.get("leader"), data.get("member") or data.get("candidate"), data.get("scheduled_at")
    )


def encode_sync(leader: Optional[str], standbys: Iterable[str]) -> str:
    names = sorted(standbys)
    return _dumps({"leader": leader, "sync_standby": ",".join(names) if names else None})


def encode_config(data: Mapping[str, Any]) -> str:
    return _dumps(dict(data))


def encode_history(lines: Iterable[Iterable[Any]]) -> str:
    return _dumps([list(line) for line in lines])


def encode_failsafe(data: Mapping[str, str]) -> str:
    return _dumps(dict(data))


def encode_legacy_optime(optime: int) -> str:
    return str(int(optime))


def snapshot_of(values: Mapping[str, str], index: Optional[int] = None) -> Snapshot:
    """Test/tool helper: a Snapshot from plain values, versions 1, 2, 3... in key order."""
    nodes = {k: Node(value=v, version=i + 1) for i, (k, v) in enumerate(values.items())}
    return Snapshot(nodes=nodes, index=index)
