"""The one key codec: Patroni 3.0.2's DCS key layout <-> `ClusterView`.

PURE: no I/O, no clock.  Every backend hands `decode` a `Snapshot` (values by
relative key name) and writes values produced by the `encode_*` functions, so
the key layout and the JSON shapes live only here.

Decoding is forgiving the way Patroni's is, and stricter about what it lets
through: a value that is not JSON, holds a non-finite number, is nested too
deeply or has a field of the wrong type or range reads as absent (that field,
or the whole key where nothing of it is usable), an absent subtree is an empty
cluster, and nothing raises.  `decode_checked` also returns what it ignored,
for the caller to log.  Encoding produces byte-for-byte
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
from qhb_patroni.dcs import safejson
from qhb_patroni.dcs.base import Node, Snapshot
from qhb_patroni.dcs.isotime import parse_iso as parse_iso  # re-exported: keys.parse_iso is the API
from qhb_patroni.dcs.isotime import representable as representable

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


# ---- decoding ---------------------------------------------------------------
# Every decoder reads what it cannot use as absent and, when given a `problems`
# list, appends (key, reason) for the caller to log; none of them raises.
Problems = List[Tuple[str, str]]


def _note(problems: Optional[Problems], key: str, reason: str) -> None:
    if problems is not None:
        problems.append((key, reason))


def _parse(value: str, key: str, problems: Optional[Problems]) -> Any:
    """Strict JSON (see safejson), or None with a problem noted."""
    try:
        return safejson.loads(value)
    except safejson.InvalidValue as exc:
        _note(problems, key, str(exc))
        return None


def _object(value: Optional[str], key: str, problems: Optional[Problems]) -> Dict[str, Any]:
    """A JSON object, or {} (empty, invalid, or not an object: the last two noted)."""
    if not value:
        return {}
    data = _parse(value, key, problems)
    if data is None:
        return {}
    if not isinstance(data, dict):
        _note(problems, key, f"expected a JSON object, got {type(data).__name__}")
        return {}
    return data


def _string(data: Mapping[str, Any], field: str, key: str, problems: Optional[Problems]) -> Optional[str]:
    value = data.get(field)
    if value is None or isinstance(value, str):
        return value
    _note(problems, key, f"{field}: expected a string, got {type(value).__name__}")
    return None


def _ranged(data: Mapping[str, Any], field: str, high: int, key: str,
            problems: Optional[Problems], low: int = 0) -> Optional[int]:
    raw = data.get(field)
    if raw is None:
        return None
    number = safejson.bounded_int(raw, low, high)
    if number is None:
        _note(problems, key, f"{field}: expected an integer from {low} to {high}, got {_short(raw)}")
    return number


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_legacy_member(value: str) -> Dict[str, Any]:
    """Governor format: a connection URL whose `application_name` holds the api_url."""
    try:
        parts = urlsplit(value)
        query = parse_qsl(parts.query)
        conn_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment))
    except ValueError:
        return {}
    api_url = None
    for name, val in query:
        if name == "application_name":
            api_url = val
            break
    return {"conn_url": conn_url, "api_url": api_url}


def decode_member(name: str, value: str, version: Optional[int] = None,
                  problems: Optional[Problems] = None) -> Member:
    """A member key; fields of the wrong type or out of range read as absent."""
    key = member_key(name)
    if value.startswith("postgres"):
        data = parse_legacy_member(value)
    else:
        data = _object(value, key, problems)
    tags = data.get("tags")
    if tags is not None and not isinstance(tags, dict):
        _note(problems, key, f"tags: expected an object, got {type(tags).__name__}")
    role = _string(data, "role", key, problems)
    return Member(
        name=name,
        conn_url=_string(data, "conn_url", key, problems),
        api_url=_string(data, "api_url", key, problems),
        state=_string(data, "state", key, problems),
        role=normalize_role(role) if role is not None else None,
        xlog_location=_ranged(data, "xlog_location", safejson.MAX_LSN, key, problems),
        timeline=_ranged(data, "timeline", safejson.MAX_TIMELINE, key, problems, low=1),
        tags=dict(tags) if isinstance(tags, dict) else {},
        data=data,
        version=version,
    )


def _usable_time(raw: Any, key: str, problems: Optional[Problems]) -> Optional[_dt.datetime]:
    """An aware timestamp that converts to UTC and to epoch seconds, else None (noted)."""
    when = parse_iso(raw) if isinstance(raw, str) else None
    if when is None:
        _note(problems, key, f"scheduled_at: not an ISO 8601 timestamp: {_short(raw)}")
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        _note(problems, key, f"scheduled_at: timestamp without a time zone: {_short(raw)}")
        return None
    if not representable(when):
        _note(problems, key, f"scheduled_at: timestamp out of range: {_short(raw)}")
        return None
    return when


def decode_failover(value: str, version: Optional[int] = None,
                    problems: Optional[Problems] = None) -> Optional[Failover]:
    """JSON `{"leader", "member", "scheduled_at"}` or legacy `leader:candidate`.

    A cleared failover (`{}`, empty, nothing set) decodes to None.  So does an
    invalid one (names that are not strings, a `scheduled_at` that is not an
    aware, representable timestamp): acting at once on a request meant for
    later would be worse than ignoring it."""
    if not value:
        return None
    try:
        data = safejson.loads(value)
    except safejson.NotJSON:
        parts = [p.strip() for p in value.split(":")]
        leader = parts[0] or None
        candidate = (parts[1] or None) if len(parts) > 1 else None
        if leader or candidate:
            return Failover(leader=leader, candidate=candidate, version=version)
        return None
    except safejson.InvalidValue as exc:
        _note(problems, FAILOVER, str(exc))
        return None
    if not isinstance(data, dict):
        _note(problems, FAILOVER, f"expected a JSON object, got {type(data).__name__}")
        return None
    leader = data.get("leader") or None
    candidate = data.get("member") or None
    for field, name in (("leader", leader), ("member", candidate)):
        if name is not None and not isinstance(name, str):
            _note(problems, FAILOVER, f"{field}: expected a member name, got {_short(name)}")
            return None
    scheduled_at: Optional[_dt.datetime] = None
    raw_at = data.get("scheduled_at")
    if raw_at:
        scheduled_at = _usable_time(raw_at, FAILOVER, problems)
        if scheduled_at is None:
            return None
    if not (leader or candidate or scheduled_at):
        return None
    return Failover(leader=leader, candidate=candidate, scheduled_at=scheduled_at, version=version)


def decode_sync(value: str, version: Optional[int] = None,
                problems: Optional[Problems] = None) -> SyncState:
    """`{"leader": .., "sync_standby": "a,b" | null}`; unparsable -> empty state."""
    data = _object(value, SYNC, problems)
    leader = _string(data, "leader", SYNC, problems)
    raw = data.get("sync_standby")
    names: List[str] = []
    if isinstance(raw, str):
        names = [n.strip() for n in raw.split(",")]
    elif isinstance(raw, list):
        names = [n.strip() for n in raw if isinstance(n, str)]
        if len(names) != len(raw):
            _note(problems, SYNC, "sync_standby: names that are not strings ignored")
    elif raw is not None:
        _note(problems, SYNC, f"sync_standby: expected names, got {_short(raw)}")
    return SyncState(
        leader=leader or None,
        sync_standby=tuple(n for n in names if n),
        version=version,
    )


def _history_line(line: Any) -> bool:
    """[timeline, lsn, reason, ...] with a valid timeline and LSN."""
    return (isinstance(line, list) and len(line) >= 2
            and safejson.bounded_int(line[0], 1, safejson.MAX_TIMELINE) is not None
            and not isinstance(line[0], str)
            and safejson.bounded_int(line[1], 0, safejson.MAX_LSN) is not None
            and not isinstance(line[1], str))


def decode_history(value: str, problems: Optional[Problems] = None) -> Tuple[Tuple[Any, ...], ...]:
    """Lines `[timeline, lsn, reason, timestamp, new leader]`; invalid lines are dropped."""
    lines = _parse(value, HISTORY, problems) if value else []
    if lines is None:
        return ()
    if not isinstance(lines, list):
        _note(problems, HISTORY, f"expected a JSON list, got {type(lines).__name__}")
        return ()
    good = tuple(tuple(line) for line in lines if _history_line(line))
    if len(good) != len(lines):
        _note(problems, HISTORY, f"{len(lines) - len(good)} invalid line(s) ignored")
    return good


def decode_status(value: str, problems: Optional[Problems] = None) -> Tuple[Optional[int], Dict[str, int]]:
    """(optime, slots) from `{"optime": N, "slots": {..}}`."""
    data = _object(value, STATUS, problems)
    slots: Dict[str, int] = {}
    raw = data.get("slots")
    if isinstance(raw, dict):
        for name, lsn in raw.items():
            as_int = safejson.bounded_int(lsn, 0, safejson.MAX_LSN)
            if as_int is not None and not isinstance(lsn, str):
                slots[str(name)] = as_int
            else:
                _note(problems, STATUS, f"slots.{name}: expected an LSN, got {_short(lsn)}")
    elif raw is not None:
        _note(problems, STATUS, f"slots: expected an object, got {_short(raw)}")
    return _ranged(data, "optime", safejson.MAX_LSN, STATUS, problems), slots


def decode_failsafe(value: str, problems: Optional[Problems] = None) -> Optional[Dict[str, str]]:
    """{member name: api_url}; entries whose URL is not a string are dropped."""
    data = _parse(value, FAILSAFE, problems) if value else None
    if data is None:
        return None
    if not isinstance(data, dict):
        _note(problems, FAILSAFE, f"expected a JSON object, got {type(data).__name__}")
        return None
    good = {str(k): v for k, v in data.items() if isinstance(v, str)}
    if len(good) != len(data):
        _note(problems, FAILSAFE, f"{len(data) - len(good)} entry(ies) without a URL string ignored")
    return good


def decode(snapshot: Snapshot) -> ClusterView:
    """The whole cluster subtree -> ClusterView (see spec 4.1 "Reading")."""
    return decode_checked(snapshot)[0]


def decode_checked(snapshot: Snapshot) -> Tuple[ClusterView, Problems]:
    """decode() and the problems found, as (key, reason) pairs for the caller to log."""
    problems: Problems = []
    try:
        return _decode(snapshot, problems), problems
    except Exception as exc:  # a decoder bug must not stop the HA loop: no view, say why
        problems.append(("", f"unexpected {type(exc).__name__}: {exc}"))
        return ClusterView(watch_index=snapshot.index), problems


def _decode(snapshot: Snapshot, problems: Problems) -> ClusterView:
    nodes = snapshot.nodes

    members: List[Member] = []
    for key, node in nodes.items():
        if key.startswith(MEMBERS):
            name = key[len(MEMBERS):]
            if name and "/" not in name:
                members.append(decode_member(name, node.value, node.version, problems))
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
        config = ClusterConfig(data=_object(cnode.value, CONFIG, problems), version=cnode.version)

    init = nodes.get(INITIALIZE)
    fnode = nodes.get(FAILOVER)
    snode = nodes.get(SYNC)
    hnode = nodes.get(HISTORY)
    fsnode = nodes.get(FAILSAFE)

    last_lsn: Optional[int] = None
    slots: Dict[str, int] = {}
    status = nodes.get(STATUS)
    if status is not None:
        last_lsn, slots = decode_status(status.value, problems)
    else:
        legacy = nodes.get(LEGACY_OPTIME)
        if legacy is not None:
            last_lsn = safejson.bounded_int(legacy.value, 0, safejson.MAX_LSN)
            if last_lsn is None:
                problems.append((LEGACY_OPTIME, f"expected an LSN, got {_short(legacy.value)}"))

    return ClusterView(
        initialize=init.value if init is not None else None,
        initialize_version=init.version if init is not None else None,
        config=config,
        leader=leader,
        members=tuple(members),
        failover=decode_failover(fnode.value, fnode.version, problems) if fnode is not None else None,
        sync=decode_sync(snode.value, snode.version, problems) if snode is not None else None,
        history=decode_history(hnode.value, problems) if hnode is not None else None,
        last_lsn=last_lsn or 0,
        slots=slots,
        failsafe=decode_failsafe(fsnode.value, problems) if fsnode is not None else None,
        status_version=status.version if status is not None else None,
        watch_index=snapshot.index,
        failover_version=fnode.version if fnode is not None else None,
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
