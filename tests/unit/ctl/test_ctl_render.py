"""patronictl rendering against the spec 2.2/2.3 tables, built from hand-made ClusterViews."""
from __future__ import annotations

import datetime as dt
import json

import yaml

from patronictl import render
from qhb_patroni.core.model import ClusterView
from tests.fixtures.api import cluster, member

MB = 1024 * 1024
SYSID = "7214159812345678901"


def batman(**kwargs: object) -> ClusterView:
    """The cluster of the first spec example: leader, sync standby, replica without xlog_location."""
    members = [
        member("postgresql0", port=5432, role="master", timeline=3),
        member("postgresql1", port=5433, timeline=3, xlog_location=100),
        member("postgresql2", port=5434, timeline=3),
    ]
    args = {"leader": "postgresql0", "sync": ["postgresql1"], "config": {"pause": True}, "last_lsn": 100}
    args.update(kwargs)
    return cluster(members, **args)  # type: ignore[arg-type]


SPEC_EXAMPLE = """\
+ Cluster: batman -------------+--------------+---------+----+-----------+
| Member      | Host           | Role         | State   | TL | Lag in MB |
+-------------+----------------+--------------+---------+----+-----------+
| postgresql0 | 127.0.0.1:5432 | Leader       | running |  3 |           |
| postgresql1 | 127.0.0.1:5433 | Sync Standby | running |  3 |         0 |
| postgresql2 | 127.0.0.1:5434 | Replica      | running |  3 |   unknown |
+-------------+----------------+--------------+---------+----+-----------+"""


def test_table_matches_spec_example_with_the_302_title() -> None:
    columns, rows = render.members_table(batman(), "batman")
    text = render.render(columns, rows, "pretty", " Cluster: batman ", render.MEMBER_ALIGNMENT)
    assert text == SPEC_EXAMPLE


def test_list_output_shows_sysid_in_title_and_service_info() -> None:
    expected = SPEC_EXAMPLE.replace(
        "+ Cluster: batman -------------+--------------+",
        f"+ Cluster: batman ({SYSID}) ------+",
    )
    assert render.list_output(batman(), "batman") == expected + "\n Maintenance mode: on"


def test_title_states_and_truncation() -> None:
    assert render.cluster_title("b", None) == " Cluster: b (uninitialized) "
    assert render.cluster_title("b", "") == " Cluster: b (initializing) "
    assert render.cluster_title("b", "123") == " Cluster: b (123) "
    # a title longer than the border is cut, the corners stay
    text = render.render(["A"], [["x"]], "pretty", " Cluster: a-very-long-name ")
    top = text.splitlines()[0]
    assert top == "+ Cl+" and len(top) == len(text.splitlines()[1])


def test_scheduled_switchover_lines() -> None:
    at = dt.datetime(2023, 3, 24, 12, 0, tzinfo=dt.timezone.utc)
    c = batman(config={}, scheduled=(at, "postgresql0", "postgresql1"))
    tail = render.list_output(c, "batman").splitlines()[-3:]
    assert tail == [
        " Switchover scheduled at: 2023-03-24T12:00:00+00:00",
        "                    from: postgresql0",
        "                      to: postgresql1",
    ]
    both = render.service_info(batman(scheduled=(at, None, "postgresql1")))
    assert both.splitlines() == [
        " Maintenance mode: on",
        " Switchover scheduled at: 2023-03-24T12:00:00+00:00",
        " " * 22 + "to: postgresql1",
    ]


def test_host_column_rule() -> None:
    distinct = cluster([member("a", host="10.0.0.1"), member("b", host="10.0.0.2")], leader="a")
    _, rows = render.members_table(distinct, "c")
    assert [r[2] for r in rows] == ["10.0.0.1", "10.0.0.2"]
    shared = cluster([member("a", host="10.0.0.1"), member("b", host="10.0.0.1")], leader="a")
    assert [r[2] for r in render.members_table(shared, "c")[1]] == ["10.0.0.1:5432", "10.0.0.1:5432"]
    odd_port = cluster([member("a", host="10.0.0.1"), member("b", host="10.0.0.2", port=6432)], leader="a")
    assert [r[2] for r in render.members_table(odd_port, "c")[1]] == ["10.0.0.1:5432", "10.0.0.2:6432"]


def test_lag_in_mb_and_roles() -> None:
    c = cluster(
        [
            member("a", role="master"),
            member("b", host="h2", xlog_location=10 * MB - int(1.5 * MB)),  # 1.5 MB -> 2
            member("c", host="h3", xlog_location=10 * MB - int(2.5 * MB)),  # 2.5 MB -> 2 (round half even)
            member("d", host="h4", xlog_location=10 * MB - 3 * MB),
            member("e", host="h5"),
        ],
        leader="a",
        sync=["d"],
        last_lsn=10 * MB,
    )
    columns, rows = render.members_table(c, "c")
    assert columns == ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    assert [(r[3], r[6]) for r in rows] == [
        ("Leader", ""),
        ("Replica", 2),
        ("Replica", 2),
        ("Sync Standby", 3),
        ("Replica", "unknown"),
    ]
    standby = cluster([member("a")], leader="a", config={"standby_cluster": {"host": "x"}})
    assert render.members_table(standby, "c")[1][0][3] == "Standby Leader"


def test_optional_columns() -> None:
    c = cluster(
        [
            member("a", role="master", tags={"nofailover": True, "clonefrom": True}),
            member(
                "b",
                host="h2",
                pending_restart=True,
                scheduled_restart={"schedule": "2023-03-24T12:00:00+00:00", "postgres_version": "15.3"},
            ),
        ],
        leader="a",
    )
    columns, rows = render.members_table(c, "c")
    assert columns[-3:] == ["Pending restart", "Scheduled restart", "Tags"]
    assert rows[0][-3:] == ["", "", {"nofailover": True, "clonefrom": True}]
    assert rows[1][-3:] == ["*", "2023-03-24T12:00:00+00:00 if version < 15.3", ""]
    text = render.list_output(c, "c")
    lines = text.splitlines()
    # multi-line tags: a rule between every row
    assert lines[3].startswith("| a ") and lines[4].startswith("|   ")  # second tag line
    assert lines[5].startswith("+---") and lines[6].startswith("| b ")
    assert "| clonefrom: true  |" in text and "| nofailover: true |" in text
    # tsv: flow style tags, cluster column kept
    tsv = render.list_output(c, "c", fmt="tsv").splitlines()
    assert tsv[0].split("\t") == [
        "Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB", "Pending restart", "Scheduled restart", "Tags",
    ]  # fmt: skip
    assert tsv[1].split("\t")[-1] == "{clonefrom: true, nofailover: true}"


def test_extended_shows_all_columns() -> None:
    columns, rows = render.members_table(batman(), "batman", extended=True)
    assert columns[-3:] == ["Pending restart", "Scheduled restart", "Tags"]
    assert all(r[-3:] == ["", "", ""] for r in rows)


def test_json_and_yaml_drop_empty_cells() -> None:
    c = batman(config={})
    doc = json.loads(render.list_output(c, "batman", fmt="json"))
    assert doc == [
        {"Cluster": "batman", "Member": "postgresql0", "Host": "127.0.0.1:5432", "Role": "Leader",
         "State": "running", "TL": 3},
        {"Cluster": "batman", "Member": "postgresql1", "Host": "127.0.0.1:5433", "Role": "Sync Standby",
         "State": "running", "TL": 3, "Lag in MB": 0},
        {"Cluster": "batman", "Member": "postgresql2", "Host": "127.0.0.1:5434", "Role": "Replica",
         "State": "running", "TL": 3, "Lag in MB": "unknown"},
    ]  # fmt: skip
    assert "Maintenance" not in render.list_output(batman(), "batman", fmt="json")
    assert yaml.safe_load(render.list_output(c, "batman", fmt="yaml")) == doc
    assert render.list_output(c, "batman", fmt="yml") == render.list_output(c, "batman", fmt="yaml")
    assert render.list_output(c, "batman", fmt="bogus") == ""


def test_tsv() -> None:
    lines = render.list_output(batman(), "batman", fmt="tsv").splitlines()
    assert lines == [
        "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB",
        "batman\tpostgresql0\t127.0.0.1:5432\tLeader\trunning\t3\t",
        "batman\tpostgresql1\t127.0.0.1:5433\tSync Standby\trunning\t3\t0",
        "batman\tpostgresql2\t127.0.0.1:5434\tReplica\trunning\t3\tunknown",
    ]


def test_empty_cluster() -> None:
    lines = render.list_output(ClusterView(), "nobody").splitlines()
    assert lines == [
        "+ Cluster: nobody (uninitialized) --+-----------+",
        "| Member | Host | Role | State | TL | Lag in MB |",
        "+--------+------+------+-------+----+-----------+",
        "+--------+------+------+-------+----+-----------+",
    ]


def test_topology_nests_by_replicatefrom() -> None:
    c = cluster(
        [
            member("postgresql0", role="master", timeline=3),
            member("postgresql1", port=5433, timeline=3, xlog_location=100),
            member("postgresql2", port=5434, timeline=3, xlog_location=100, tags={"replicatefrom": "postgresql1"}),
            member("postgresql3", port=5435, timeline=3, xlog_location=100, tags={"replicatefrom": "postgresql3"}),
        ],
        leader="postgresql0",
        last_lsn=100,
    )
    _, rows = render.members_table(c, "batman", fmt="topology")
    assert [r[1] for r in rows] == ["postgresql0", "+ postgresql1", "  + postgresql2", "+ postgresql3"]
    text = render.list_output(c, "batman", fmt="topology")
    assert "|   + postgresql2 | 127.0.0.1:5434 | Replica | running |  3 |         0 |" in text


def test_format_pg_version() -> None:
    assert render.format_pg_version(150002) == "15.2"
    assert render.format_pg_version(100000) == "10.0"
    assert render.format_pg_version(90624) == "9.6.24"
