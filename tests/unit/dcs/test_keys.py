"""The key codec against literal Patroni 3.0.2 values (spec 4.1, 4.2)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from qhb_patroni.core.model import ROLE_MASTER
from qhb_patroni.dcs import keys
from qhb_patroni.dcs.base import Node, Snapshot

REPLICA_JSON = (
    '{"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni",'
    '"state":"running","role":"replica","version":"3.0.2","xlog_location":50331968,"timeline":2}'
)


# ---- base path -------------------------------------------------------------------
@pytest.mark.parametrize(
    "namespace, scope, expected",
    [
        (None, "batman", "/service/batman"),
        ("/service/", "batman", "/service/batman"),
        ("service", "batman", "/service/batman"),
        ("//ns//", "batman", "/ns/batman"),
        ("/", "batman", "/batman"),
        ("/a//b/", "c", "/a/b/c"),
    ],
)
def test_base_path(namespace: str, scope: str, expected: str) -> None:
    assert keys.base_path(namespace, scope) == expected


def test_base_path_with_citus_group() -> None:
    assert keys.base_path("/service/", "demo", group=1) == "/service/demo/1"


# ---- encoders: exact Patroni strings --------------------------------------------------
def test_member_json_is_byte_identical_to_patroni_example_whatever_the_input_order() -> None:
    data = {
        "timeline": 2,
        "xlog_location": 50331968,
        "version": "3.0.2",
        "role": "replica",
        "state": "running",
        "api_url": "http://10.0.0.2:8008/patroni",
        "conn_url": "postgres://10.0.0.2:5432/postgres",
    }
    assert keys.encode_member(data) == REPLICA_JSON


def test_member_json_full_key_order() -> None:
    data = {
        "pause": True,
        "scheduled_restart": {"schedule": "2023-03-24T12:00:00+00:00"},
        "timeline": 3,
        "xlog_location": 1,
        "pending_restart": True,
        "tags": {"nofailover": True},
        "checkpoint_after_promote": False,
        "proxy_url": "postgres://p:5433/postgres",
        "version": "3.0.2",
        "role": "master",
        "state": "running",
        "api_url": "http://a:8008/patroni",
        "conn_url": "postgres://a:5432/postgres",
    }
    encoded = keys.encode_member(data)
    assert list(json.loads(encoded)) == list(keys.MEMBER_KEY_ORDER)
    assert " " not in encoded.replace("running", "")  # compact separators


def test_status_json() -> None:
    assert keys.encode_status(50331968) == '{"optime":50331968}'
    assert keys.encode_status(7, {}) == '{"optime":7}'
    assert keys.encode_status(7, {"logical_1": 5}) == '{"optime":7,"slots":{"logical_1":5}}'


def test_failover_json_only_set_fields() -> None:
    at = dt.datetime(2023, 3, 24, 12, 0, tzinfo=dt.timezone.utc)
    assert keys.encode_failover("pg0", "pg1", at) == (
        '{"leader":"pg0","member":"pg1","scheduled_at":"2023-03-24T12:00:00+00:00"}'
    )
    assert keys.encode_failover(None, "pg1") == '{"member":"pg1"}'
    assert keys.encode_failover("pg0") == '{"leader":"pg0"}'
    assert keys.encode_failover() == "{}"
    assert keys.encode_failover_data({"candidate": "pg2"}) == '{"member":"pg2"}'


def test_sync_json() -> None:
    assert keys.encode_sync("pg0", ["pg2", "pg1"]) == '{"leader":"pg0","sync_standby":"pg1,pg2"}'
    assert keys.encode_sync("pg0", []) == '{"leader":"pg0","sync_standby":null}'


def test_config_history_failsafe_legacy_optime() -> None:
    assert keys.encode_config({"ttl": 30, "postgresql": {"use_pg_rewind": True}}) == (
        '{"ttl":30,"postgresql":{"use_pg_rewind":true}}'
    )
    assert keys.encode_history([(1, 25623960, "no recovery target specified", "2023-03-20T16:57:57+00:00",
                                 "postgresql0")]) == (
        '[[1,25623960,"no recovery target specified","2023-03-20T16:57:57+00:00","postgresql0"]]'
    )
    assert keys.encode_failsafe({"pg0": "http://a:8008/patroni"}) == '{"pg0":"http://a:8008/patroni"}'
    assert keys.encode_legacy_optime(123) == "123"


# ---- decoding -------------------------------------------------------------------
def test_empty_snapshot_is_empty_cluster() -> None:
    view = keys.decode(Snapshot(nodes={}, index=42))
    assert view.initialize is None and view.leader is None and view.members == ()
    assert view.config is None and view.failover is None and view.sync is None and view.history is None
    assert view.last_lsn == 0 and view.watch_index == 42


def test_full_cluster_decodes() -> None:
    snap = Snapshot(
        nodes={
            "initialize": Node("7214287012345678901", 3),
            "config": Node('{"ttl":30,"loop_wait":10,"pause":true}', 4),
            "leader": Node("pg0", 20, "lease-1"),
            "members/pg0": Node(REPLICA_JSON.replace('"replica"', '"primary"'), 18),
            "members/pg1": Node(REPLICA_JSON, 19),
            "members/pg1/extra": Node("{}", 5),  # not a direct child
            "status": Node('{"optime":50331968,"slots":{"logical_1":100,"bad":"x"}}', 21),
            "optime/leader": Node("1", 6),
            "failover": Node('{"leader":"pg0","member":"pg1","scheduled_at":"2023-03-24T12:00:00+00:00"}', 22),
            "sync": Node('{"leader":"pg0","sync_standby":"pg1,pg2"}', 23),
            "history": Node('[[1,25623960,"no recovery target specified"]]', 24),
            "failsafe": Node('{"pg0":"http://a:8008/patroni"}', 25),
        },
        index=30,
    )
    view = keys.decode(snap)
    assert view.initialize == "7214287012345678901" and view.initialize_version == 3
    assert view.has_valid_initialize
    assert view.config is not None and view.config.version == 4 and view.paused
    assert [m.name for m in view.members] == ["pg0", "pg1"]
    assert view.leader is not None and view.leader.name == "pg0" and view.leader.version == 20
    assert view.leader.session == "lease-1"
    assert view.leader.member is not None and view.leader.member.role == ROLE_MASTER  # "primary" read as master
    pg1 = view.member("pg1")
    assert pg1 is not None and pg1.xlog_location == 50331968 and pg1.timeline == 2 and pg1.version == 19
    assert pg1.host_port == ("10.0.0.2", 5432) and pg1.api_url == "http://10.0.0.2:8008/patroni"
    assert view.last_lsn == 50331968  # /status wins over legacy optime
    assert dict(view.slots) == {"logical_1": 100}
    assert view.status_version == 21
    assert view.failover is not None and view.failover.leader == "pg0" and view.failover.candidate == "pg1"
    assert view.failover.scheduled_at == dt.datetime(2023, 3, 24, 12, 0, tzinfo=dt.timezone.utc)
    assert view.failover.version == 22
    assert view.sync is not None and view.sync.sync_standby == ("pg1", "pg2") and view.sync.version == 23
    assert view.history == ((1, 25623960, "no recovery target specified"),)
    assert view.timeline == 2
    assert view.failsafe == {"pg0": "http://a:8008/patroni"}
    assert view.watch_index == 30


def test_leader_without_member_key_gets_placeholder() -> None:
    view = keys.decode(keys.snapshot_of({"leader": "ghost"}))
    assert view.leader is not None and view.leader.member is not None
    assert view.leader.member.name == "ghost" and view.leader.member.conn_url is None


def test_legacy_optime_used_when_no_status() -> None:
    assert keys.decode(keys.snapshot_of({"optime/leader": "12345"})).last_lsn == 12345
    assert keys.decode(keys.snapshot_of({"optime/leader": "junk"})).last_lsn == 0


@pytest.mark.parametrize("key", ["config", "status", "sync", "history", "failsafe", "failover", "members/x"])
def test_unparsable_json_reads_as_empty(key: str) -> None:
    view = keys.decode(keys.snapshot_of({key: "{not json"}))
    if key == "config":
        assert view.config is not None and dict(view.config.data) == {}
    elif key == "status":
        assert view.last_lsn == 0 and dict(view.slots) == {}
    elif key == "sync":
        assert view.sync is not None and view.sync.leader is None and view.sync.sync_standby == ()
    elif key == "history":
        assert view.history == ()
    elif key == "failsafe":
        assert view.failsafe is None
    elif key == "failover":
        # not JSON -> legacy "leader:candidate" parse of "{not json"
        assert view.failover is not None and view.failover.leader == "{not json"
    else:
        member = view.member("x")
        assert member is not None and member.conn_url is None and dict(member.data) == {}


def test_non_object_json_reads_as_empty() -> None:
    view = keys.decode(keys.snapshot_of({"config": "[1,2]", "failsafe": '"x"', "sync": "3"}))
    assert view.config is not None and dict(view.config.data) == {}
    assert view.failsafe is None
    assert view.sync is not None and view.sync.sync_standby == ()


def test_failover_legacy_text_and_cleared() -> None:
    legacy = keys.decode_failover("pg0:pg1", 7)
    assert legacy is not None and (legacy.leader, legacy.candidate, legacy.version) == ("pg0", "pg1", 7)
    only_candidate = keys.decode_failover(":pg1")
    assert only_candidate is not None and only_candidate.leader is None and only_candidate.candidate == "pg1"
    assert keys.decode_failover("{}") is None
    assert keys.decode_failover("") is None
    assert keys.decode_failover('{"scheduled_at":"not a date","member":"pg1"}') is None


def test_the_raw_failover_version_is_kept_even_when_the_key_decodes_to_none() -> None:
    """The lock holder watches /failover from it: a cleared "{}" has a version too."""
    cleared = keys.decode(Snapshot(nodes={"failover": Node(value="{}", version=17)}, index=20))
    assert cleared.failover is None and cleared.failover_version == 17
    assert keys.decode(Snapshot(nodes={}, index=20)).failover_version is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2023-03-24T12:00:00+00:00", dt.datetime(2023, 3, 24, 12, tzinfo=dt.timezone.utc)),
        ("2023-03-24T12:00:00Z", dt.datetime(2023, 3, 24, 12, tzinfo=dt.timezone.utc)),
        ("2023-03-24 12:00:00.5+0100",
         dt.datetime(2023, 3, 24, 12, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
        ("2023-03-24T12:00:00.123456789+00:00",
         dt.datetime(2023, 3, 24, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)),
        ("garbage", None),
    ],
)
def test_parse_iso(text: str, expected: object) -> None:
    assert keys.parse_iso(text) == expected


def test_sync_accepts_list_and_null() -> None:
    assert keys.decode_sync('{"leader":"a","sync_standby":null}').sync_standby == ()
    assert keys.decode_sync('{"leader":"a","sync_standby":["b"," c"]}').sync_standby == ("b", "c")
    assert keys.decode_sync('{"leader":"a","sync_standby":"b, c,"}').sync_standby == ("b", "c")


def test_governor_legacy_member_format() -> None:
    value = "postgres://replicator:secret@10.0.0.3:5432/postgres?application_name=http://10.0.0.3:8008/patroni"
    member = keys.decode_member("pg3", value, 9)
    assert member.conn_url == "postgres://replicator:secret@10.0.0.3:5432/postgres"
    assert member.api_url == "http://10.0.0.3:8008/patroni"
    assert member.role is None and member.version == 9


def test_member_tags_and_bad_numbers() -> None:
    member = keys.decode_member("n", '{"tags":{"nofailover":"on"},"xlog_location":"x","timeline":"3","role":5}')
    assert member.nofailover and member.xlog_location is None and member.timeline == 3 and member.role is None


def test_round_trip_through_encoders() -> None:
    at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    values = {
        "config": keys.encode_config({"ttl": 20}),
        "failover": keys.encode_failover("a", "b", at),
        "sync": keys.encode_sync("a", ["b"]),
        "history": keys.encode_history([[1, 100, "r", "t", "a"]]),
        "status": keys.encode_status(500, {"s": 400}),
        "failsafe": keys.encode_failsafe({"a": "http://a/patroni"}),
        "members/a": keys.encode_member({"conn_url": "postgres://h:1/d", "role": "master", "state": "running"}),
        "leader": "a",
    }
    view = keys.decode(keys.snapshot_of(values))
    assert view.config is not None and dict(view.config.data) == {"ttl": 20}
    assert view.failover is not None and view.failover.scheduled_at == at and view.failover.candidate == "b"
    assert view.sync is not None and view.sync.leader == "a" and view.sync.sync_standby == ("b",)
    assert view.history == ((1, 100, "r", "t", "a"),)
    assert view.last_lsn == 500 and dict(view.slots) == {"s": 400}
    assert view.failsafe == {"a": "http://a/patroni"}
    assert view.leader is not None and view.leader.member is not None and view.leader.member.host_port == ("h", 1)
