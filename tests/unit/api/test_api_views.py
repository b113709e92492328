"""GET /patroni, /cluster, /history documents against the spec examples (1.3, 1.6)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from qhb_patroni.api import views
from qhb_patroni.core.model import Member
from tests.fixtures.api import (
    NOW,
    cluster,
    member,
    primary_server,
    replica_server,
    status_view,
    two_node_cluster,
)

UTC = dt.timezone.utc


def test_primary_status_matches_spec_example() -> None:
    view = status_view(server=primary_server(), cluster_view=two_node_cluster(), holds_lock=True)
    doc = views.node_status(view, NOW)
    assert doc == {
        "state": "running",
        "postmaster_start_time": "2023-03-24 10:11:12.123456+00:00",
        "role": "master",
        "server_version": 150002,
        "xlog": {"location": 50331968},
        "timeline": 2,
        "replication": [
            {
                "usename": "replicator",
                "application_name": "postgresql1",
                "client_addr": "10.0.0.2",
                "state": "streaming",
                "sync_state": "async",
                "sync_priority": 0,
            }
        ],
        "dcs_last_seen": 1679652672,
        "database_system_identifier": "7214159812345678901",
        "patroni": {"version": "3.0.2", "scope": "batman"},
    }
    assert json.loads(json.dumps(doc)) == doc


def test_replica_status_xlog_shape_and_sync_standby() -> None:
    c = two_node_cluster(sync=["postgresql1"], config={"synchronous_mode": True})
    view = status_view("postgresql1", server=replica_server(), cluster_view=c)
    doc = views.node_status(view, NOW)
    assert doc["role"] == "replica"
    assert doc["xlog"] == {
        "received_location": 50331968,
        "replayed_location": 50331900,
        "replayed_timestamp": "2023-03-24 10:12:00.000000+00:00",
        "paused": False,
    }
    assert doc["sync_standby"] is True
    assert "cluster_unlocked" not in doc
    assert "replication" not in doc


def test_replica_received_falls_back_to_replayed() -> None:
    view = status_view("postgresql1", server=replica_server(received_location=None, replay_paused=True))
    assert views.node_status(view, NOW)["xlog"] == {
        "received_location": 50331900,
        "replayed_location": 50331900,
        "replayed_timestamp": "2023-03-24 10:12:00.000000+00:00",
        "paused": True,
    }


def test_sync_standby_needs_synchronous_mode() -> None:
    c = two_node_cluster(sync=["postgresql1"], config={"synchronous_mode": False})
    doc = views.node_status(status_view("postgresql1", server=replica_server(), cluster_view=c), NOW)
    assert "sync_standby" not in doc


def test_query_failure_reports_unknown_state_and_internal_role() -> None:
    server = primary_server(query_ok=False, in_recovery=None, role="demoted")
    doc = views.node_status(status_view(server=server), NOW)
    assert doc["state"] == "unknown"
    assert doc["role"] == "demoted"
    for key in ("xlog", "timeline", "server_version", "postmaster_start_time", "replication"):
        assert key not in doc
    assert doc["cluster_unlocked"] is True


def test_stopped_server_keeps_its_state() -> None:
    server = primary_server(state="stopped", query_ok=False, role="uninitialized")
    doc = views.node_status(status_view(server=server), NOW)
    assert doc["state"] == "stopped" and doc["role"] == "uninitialized"


def test_standby_leader_role_in_recovery() -> None:
    server = replica_server(role="standby_leader")
    assert views.node_status(status_view(server=server), NOW)["role"] == "standby_leader"


def test_optional_flags() -> None:
    c = two_node_cluster(leader="")
    view = status_view(
        server=primary_server(pending_restart=True),
        cluster_view=c,
        tags={"nofailover": True},
        paused=True,
    )
    doc = views.node_status(view, NOW)
    assert doc["cluster_unlocked"] is True
    assert doc["pending_restart"] is True
    assert doc["tags"] == {"nofailover": True}
    assert doc["pause"] is True


def test_stale_dcs_view_means_cluster_unlocked() -> None:
    view = status_view(cluster_view=two_node_cluster(), fresh=False)
    assert views.node_status(view, NOW)["cluster_unlocked"] is True
    assert "cluster_unlocked" not in views.node_status(status_view(cluster_view=two_node_cluster()), NOW)


def test_cluster_matches_spec_example() -> None:
    at = dt.datetime(2023, 3, 24, 12, 0, tzinfo=UTC)
    m0 = member("postgresql0", host="10.0.0.1", role="master", timeline=2, tags={"clonefrom": True})
    m1 = member(
        "postgresql1",
        host="10.0.0.2",
        timeline=2,
        xlog_location=50331968,
        pending_restart=True,
        scheduled_restart={"schedule": "2023-03-24T12:00:00+00:00", "postmaster_start_time": "..."},
    )
    c = cluster(
        [m1, m0],  # unsorted on purpose
        leader="postgresql0",
        sync=["postgresql1"],
        config={"pause": True},
        last_lsn=50331968,
        scheduled=(at, "postgresql0", "postgresql1"),
    )
    assert views.cluster_json(c) == {
        "members": [
            {
                "name": "postgresql0",
                "role": "leader",
                "state": "running",
                "api_url": "http://10.0.0.1:8008/patroni",
                "host": "10.0.0.1",
                "port": 5432,
                "timeline": 2,
                "tags": {"clonefrom": True},
            },
            {
                "name": "postgresql1",
                "role": "sync_standby",
                "state": "running",
                "api_url": "http://10.0.0.2:8008/patroni",
                "host": "10.0.0.2",
                "port": 5432,
                "timeline": 2,
                "lag": 0,
                "pending_restart": True,
                "scheduled_restart": {"schedule": "2023-03-24T12:00:00+00:00", "postmaster_start_time": "..."},
            },
        ],
        "pause": True,
        "scheduled_switchover": {"at": "2023-03-24T12:00:00+00:00", "from": "postgresql0", "to": "postgresql1"},
    }


def test_cluster_lag_rules() -> None:
    c = cluster(
        [
            member("a", role="master"),
            member("b", xlog_location=1000),
            member("c"),  # no xlog_location
            member("d", xlog_location=5000),  # ahead of the leader optime
        ],
        leader="a",
        last_lsn=3000,
    )
    by_name = {m["name"]: m for m in views.cluster_json(c)["members"]}
    assert "lag" not in by_name["a"]
    assert by_name["b"]["lag"] == 2000
    assert by_name["c"]["lag"] == "unknown"
    assert by_name["d"]["lag"] == 0


def test_cluster_roles_standby_leader_and_no_leader() -> None:
    members = [member("a"), member("b", xlog_location=1)]
    standby = cluster(members, leader="a", config={"standby_cluster": {"host": "10.1.1.1", "port": 5432}})
    assert [m["role"] for m in views.cluster_json(standby)["members"]] == ["standby_leader", "replica"]
    unlocked = cluster(members, leader=None, sync=["b"])
    doc = views.cluster_json(unlocked)
    assert [m["role"] for m in doc["members"]] == ["replica", "sync_standby"]
    assert [m["lag"] for m in doc["members"]] == ["unknown", 0]
    assert "pause" not in doc and "scheduled_switchover" not in doc


def test_cluster_member_without_conn_url_and_bad_port() -> None:
    bare = Member(name="x", data={})
    bad_port = Member(name="y", conn_url="postgres://h:notaport/db", data={"state": "running"})
    c = cluster([bare, bad_port])
    x, y = views.cluster_json(c)["members"]
    assert x == {"name": "x", "role": "replica", "state": "", "api_url": None, "lag": "unknown"}
    assert y["host"] == "h" and "port" not in y


def test_scheduled_switchover_without_names() -> None:
    at = dt.datetime(2023, 3, 24, 12, 0, tzinfo=UTC)
    c = cluster([member("a")], leader="a", scheduled=(at, None, None))
    assert views.cluster_json(c)["scheduled_switchover"] == {"at": "2023-03-24T12:00:00+00:00"}


def test_history() -> None:
    lines = [(1, 25623960, "no recovery target specified", "2023-03-20T16:57:57+00:00", "postgresql0"), (2, 100, "x")]
    c = cluster([member("a")], history=lines)
    assert views.history_json(c) == [list(lines[0]), [2, 100, "x"]]
    assert views.history_json(cluster([member("a")])) == []
    assert views.history_json(None) == []


def test_sql_figures_older_than_a_few_seconds_are_marked_stale() -> None:
    fresh = status_view("postgresql1", replace(replica_server(), sampled_at=NOW - 1.0), two_node_cluster())
    assert "stale" not in views.node_status(fresh, NOW)
    old = status_view("postgresql1", replace(replica_server(), sampled_at=NOW - 7.25), two_node_cluster())
    doc = views.node_status(old, NOW)
    assert doc["stale"]["seconds"] == 7.2 and "xlog" in doc["stale"]["fields"]
    assert doc["state"] == "running"  # liveness is checked per request, not sampled
    failed = status_view("postgresql1", replace(replica_server(), sampled_at=NOW - 30, query_ok=False),
                         two_node_cluster())
    assert "stale" not in views.node_status(failed, NOW)  # nothing sampled to be stale: state says unknown
