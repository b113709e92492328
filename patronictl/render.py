"""patronictl output (spec 2.2, 2.3). PURE: cluster views in, text out.

    members_table(cluster, name, extended, fmt) -> (columns, rows)
    render(columns, rows, fmt, title, alignment) -> text
    service_info(cluster)                       -> text after a pretty table ('' if none)
    list_output(cluster, name, extended, fmt)   -> the whole `list` output for one cluster
"""
from __future__ import annotations

import json
from typing import Any, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple

import yaml
from prettytable import HRuleStyle, PrettyTable

from qhb_patroni.api.clusterdoc import cluster_json
from qhb_patroni.core.model import ClusterView

FORMATS = ("pretty", "tsv", "json", "yaml", "yml", "topology")
MEMBER_ALIGNMENT = {"TL": "r", "Lag in MB": "r"}
RIGHT_ALIGNED = ("TL", "Lag in MB", "Group", "LSN")

Row = List[Any]


def dump_yaml(data: Any, flow: bool = False) -> str:
    """YAML for humans, as patronictl writes it (also used by show-config)."""
    return str(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, width=200))


def cluster_title(name: str, initialize: Optional[str]) -> str:
    """` Cluster: <name> (<sysid>) ` (the sysid is shown as in 2.x and 3.1.1+)."""
    sysid = {None: "uninitialized", "": "initializing"}.get(initialize, initialize)
    return f" Cluster: {name} ({sysid}) "


def _topology_order(members: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    """Leader first, then replicas nested under their `replicatefrom` parent."""
    leader = next((m for m in members if str(m["role"]).endswith("leader")), None)
    replicas = {m["name"] for m in members if not str(m["role"]).endswith("leader")}
    children: Dict[Optional[str], List[Dict[str, Any]]] = {}
    leader_name = leader["name"] if leader else None
    for m in members:
        if str(m["role"]).endswith("leader"):
            continue
        tags = m.get("tags")
        parent = tags.get("replicatefrom") if isinstance(tags, Mapping) else None  # tags come from the DCS as-is
        if not (isinstance(parent, str) and parent and parent != m["name"] and parent in replicas):
            parent = leader_name
        children.setdefault(parent, []).append(m)

    def walk(level: int, m: Dict[str, Any], seen: FrozenSet[str]) -> Iterator[Dict[str, Any]]:
        if level > 0:
            m = dict(m, name="{}+ {}".format(" " * (level - 1) * 2, m["name"]))
        yield m
        for child in children.get(m.get("_key"), []):
            if child["_key"] not in seen:  # replicatefrom cycles are cut
                yield from walk(level + 1, child, seen | {child["_key"]})

    for m in members:
        m["_key"] = m["name"]
    if leader is not None:
        yield from walk(0, leader, frozenset({leader["_key"]}))
    else:  # no leader: orphans hang off a nameless root
        for child in children.get(None, []):
            yield from walk(1, child, frozenset({child["_key"]}))


def members_table(
    cluster: ClusterView, name: str, extended: bool = False, fmt: str = "pretty"
) -> Tuple[List[str], List[Row]]:
    """Columns and rows of `list` (Cluster column first, as in tsv/json/yaml)."""
    doc = cluster_json(cluster)
    members: List[Dict[str, Any]] = doc["members"]
    columns = ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    for title in ("Pending restart", "Scheduled restart", "Tags"):
        key = title.lower().replace(" ", "_")
        if extended or any(m.get(key) for m in members):
            columns.append(title)

    # host:port when someone uses a non-default port or two members share a host
    with_host = [m for m in members if "host" in m]
    append_port = any("port" in m and m["port"] != 5432 for m in with_host) or len(
        {m["host"] for m in with_host}
    ) < len(with_host)

    rows: List[Row] = []
    ordered = _topology_order(members) if fmt == "topology" else iter(members)
    for m in ordered:
        lag = m.get("lag", "")
        host = m.get("host", "")
        if append_port and host and m.get("port"):
            host = f"{host}:{m['port']}"
        scheduled = m.get("scheduled_restart")
        if isinstance(scheduled, Mapping):
            text = str(scheduled.get("schedule", ""))
            if "postgres_version" in scheduled:
                text += f" if version < {scheduled['postgres_version']}"
            scheduled = text
        cells = {
            "Cluster": name,
            "Member": m["name"],
            "Host": host,
            "Role": str(m["role"]).replace("_", " ").title(),
            "State": m["state"],
            "TL": m.get("timeline", ""),
            "Lag in MB": round(lag / 1024 / 1024) if isinstance(lag, int) and not isinstance(lag, bool) else lag,
            "Pending restart": "*" if m.get("pending_restart") else "",
            "Scheduled restart": scheduled or "",
            "Tags": m.get("tags") or "",
        }
        rows.append([cells[c] for c in columns])
    return columns, rows


def _paint_title(table: str, title: str) -> str:
    """Write `title` over the top border, keeping its first `+`."""
    first, sep, rest = table.partition("\n")
    head = title[: max(0, len(first) - 2)]
    return first[0] + head + first[1 + len(head):] + sep + rest if first else table


def render(
    columns: Sequence[str],
    rows: Sequence[Row],
    fmt: str = "pretty",
    title: Optional[str] = None,
    alignment: Optional[Mapping[str, str]] = None,
    delimiter: str = "\t",
) -> str:
    """Text for one table. `title` set = a member list (empty cells dropped from
    json/yaml, Tags rendered as YAML, Cluster column hidden in pretty)."""
    if fmt in ("json", "yaml", "yml"):
        elements = [{k: v for k, v in zip(columns, r) if not title or str(v)} for r in rows]
        return json.dumps(elements) if fmt == "json" else dump_yaml(elements)
    if fmt not in ("pretty", "tsv", "topology"):
        return ""  # 3.0.2 prints nothing for an unknown format
    cols = list(columns)
    body = [list(r) for r in rows]
    is_list = bool(title and cols and cols[0] == "Cluster")
    if is_list and "Tags" in cols:
        i = cols.index("Tags")
        for r in body:
            if r[i]:
                r[i] = dump_yaml(r[i], flow=fmt != "pretty").strip()
    if fmt == "tsv":
        return "\n".join(delimiter.join(str(c) for c in r) for r in [cols, *body])
    if is_list:
        cols = cols[1:]
        body = [r[1:] for r in body]
    multiline = any(isinstance(c, str) and "\n" in c for r in body for c in r)
    table = PrettyTable(cols, hrules=HRuleStyle.ALL if multiline else HRuleStyle.FRAME)
    table.align = "l"
    for column, side in (alignment or {}).items():
        if column in cols and side in ("l", "c", "r"):
            table.align[column] = side  # type: ignore[assignment]
    for r in body:
        table.add_row(r)
    text = table.get_string()
    return _paint_title(text, title) if title else text


def service_info(cluster: ClusterView) -> str:
    """` Maintenance mode: on` / scheduled switchover lines printed under a pretty table."""
    doc = cluster_json(cluster)
    info: List[str] = []
    if doc.get("pause"):
        info.append("Maintenance mode: on")
    switchover = doc.get("scheduled_switchover")
    if switchover:
        text = "Switchover scheduled at: " + switchover["at"]
        for key in ("from", "to"):
            if key in switchover:
                text += f"\n{key:>24}: {switchover[key]}"
        info.append(text)
    return " " + "\n ".join(info) if info else ""


def list_output(cluster: ClusterView, name: str, extended: bool = False, fmt: str = "pretty") -> str:
    columns, rows = members_table(cluster, name, extended, fmt)
    text = render(columns, rows, fmt, cluster_title(name, cluster.initialize), MEMBER_ALIGNMENT)
    if fmt in ("pretty", "topology"):
        extra = service_info(cluster)
        if extra:
            text += "\n" + extra
    return text


def format_pg_version(version: int) -> str:
    """150002 -> '15.2', 90624 -> '9.6.24'."""
    if version < 100000:
        return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return f"{version // 10000}.{version % 100}"
