"""Hostile DCS values (issue 12 items 2, 3): every key decoder reads a value it
cannot use as absent or invalid, says why, and never raises; the cluster
handle logs each bad value once, not every cycle."""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Dict, List, Tuple

import pytest

from qhb_patroni.dcs import keys, safejson
from qhb_patroni.dcs.base import Snapshot
from qhb_patroni.dcs.memory import MemoryServer, MemoryStore
from qhb_patroni.dcs.writer import ClusterDCS

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = {
    "infinity": "Infinity",
    "nan": "NaN",
    "huge float": "1e400",
    "huge int": "9" * 5000,
    "deep list": DEEP,
    "deep object": '{"a":' * 50 + "1" + "}" * 50,
    "replacement chars": b"\xff\xfe{\x80".decode("utf-8", "replace"),
    "wrong type": "[1, 2, 3]",
    "string": '"text"',
}
ALL_KEYS = ("config", "leader", "status", "sync", "history", "failsafe", "failover",
            "members/x", "initialize", "optime/leader")


@pytest.mark.parametrize("key", ALL_KEYS)
@pytest.mark.parametrize("label", sorted(HOSTILE))
def test_no_hostile_value_raises_and_nothing_usable_comes_through(key: str, label: str) -> None:
    view, problems = keys.decode_checked(keys.snapshot_of({key: HOSTILE[label]}))
    assert all(k != "" for k, _ in problems), problems  # no decoder bug caught by the last guard
    assert view.last_lsn == 0 and dict(view.slots) == {}
    assert view.failover is None or view.failover.scheduled_at is None
    if key == "config":
        assert view.config is not None and dict(view.config.data) == {}
    if key == "members/x":
        member = view.member("x")
        assert member is not None and member.xlog_location is None and member.timeline is None
    json.dumps(view.history or (), allow_nan=False)  # nothing non-finite left in the view


@pytest.mark.parametrize("field, value", [
    ("xlog_location", "Infinity"), ("xlog_location", "1e400"), ("xlog_location", "NaN"),
    ("xlog_location", "-1"), ("xlog_location", str(2**64)), ("xlog_location", "1.5"),
    ("timeline", "Infinity"), ("timeline", "0"), ("timeline", str(2**32)), ("timeline", "[1]"),
])
def test_member_numbers_out_of_range_read_as_absent(field: str, value: str) -> None:
    problems: List = []
    text = '{"conn_url":"postgres://h:5432/d","state":"running","' + field + '":' + value + "}"
    member = keys.decode_member("m", text, 1, problems)
    assert member.xlog_location is None and member.timeline is None
    assert problems and problems[0][0] == "members/m"


def test_member_with_one_bad_field_keeps_the_good_ones() -> None:
    problems: List = []
    member = keys.decode_member("m", '{"conn_url":"postgres://h:1/d","state":"running","timeline":0,'
                                     '"xlog_location":100,"role":["x"],"tags":"nope"}', 1, problems)
    assert (member.conn_url, member.state, member.xlog_location) == ("postgres://h:1/d", "running", 100)
    assert member.timeline is None and member.role is None and dict(member.tags) == {}
    assert len(problems) == 3


@pytest.mark.parametrize("scheduled_at", [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2030-01-01T00:00:00",  # naive: no time zone
    "0001-01-01T00:00:00",
    "not a date",
])
def test_failover_with_unusable_schedule_is_ignored_and_said_so(scheduled_at: str) -> None:
    problems: List = []
    value = json.dumps({"leader": "a", "member": "b", "scheduled_at": scheduled_at})
    assert keys.decode_failover(value, 3, problems) is None
    assert problems and problems[0][0] == "failover" and "scheduled_at" in problems[0][1]


def test_failover_names_must_be_strings() -> None:
    problems: List = []
    assert keys.decode_failover('{"leader":{"a":1},"member":"b"}', 1, problems) is None
    assert keys.decode_failover('{"leader":"a","member":7}', 1, problems) is None
    assert len(problems) == 2


def test_failover_non_finite_json_is_not_read_as_legacy_text() -> None:
    assert keys.decode_failover("Infinity") is None
    assert keys.decode_failover("1e400") is None
    legacy = keys.decode_failover("pg0:pg1")
    assert legacy is not None and legacy.candidate == "pg1"


def test_status_sync_history_failsafe_keep_only_valid_parts() -> None:
    problems: List = []
    optime, slots = keys.decode_status('{"optime":"x","slots":{"a":5,"b":1e300,"c":"7","d":-1}}', problems)
    assert optime is None and slots == {"a": 5}
    sync = keys.decode_sync('{"leader":5,"sync_standby":["a",{"b":1},"c"]}', 1, problems)
    assert sync.leader is None and sync.sync_standby == ("a", "c")
    history = keys.decode_history('[[1,100,"r"],[0,5,"r"],["2",5],[3],"x",[4,1e30,"r"]]', problems)
    assert history == ((1, 100, "r"),)
    failsafe = keys.decode_failsafe('{"a":"http://a:8008/patroni","b":{"x":1}}', problems)
    assert failsafe == {"a": "http://a:8008/patroni"}
    assert {k for k, _ in problems} == {"status", "sync", "history", "failsafe"}


def test_the_cluster_timeline_survives_any_history() -> None:
    view = keys.decode(keys.snapshot_of({"history": "[[1e308, 5, \"r\"]]"}))
    assert view.timeline == 1


def test_strict_json_limits() -> None:
    for text in ("NaN", "-Infinity", "1e400", DEEP, "9" * 5000):
        with pytest.raises(safejson.InvalidValue):
            safejson.loads(text)
    nested: object = 1
    for _ in range(safejson.MAX_DEPTH):
        nested = [nested]
    assert safejson.loads(json.dumps(nested)) == nested
    with pytest.raises(safejson.InvalidValue):
        safejson.loads(json.dumps([nested]))


def _handle(values: Dict[str, str]) -> Tuple[ClusterDCS, MemoryStore]:
    store = MemoryStore(MemoryServer(), "/service/demo", "n0")
    for key, value in values.items():
        store.put(key, value)
    return ClusterDCS(store, "n0", base="/service/demo/"), store


def test_each_bad_value_is_logged_once_per_key_and_value(caplog: pytest.LogCaptureFixture) -> None:
    dcs, store = _handle({"status": '{"optime":Infinity}', "members/n1": DEEP})
    caplog.set_level(logging.WARNING, logger="qhb_patroni.dcs.writer")
    for _ in range(5):
        dcs.get_cluster()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert any("/service/demo/status" in line and "Infinity" in line for line in lines)
    assert any("/service/demo/members/n1" in line and "nested" in line for line in lines)
    caplog.clear()
    store.put("status", '{"optime":1e400}')  # another bad value: logged again, once
    for _ in range(3):
        dcs.get_cluster()
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring invalid DCS value at /service/demo/status: number 1e400 out of range"]
    caplog.clear()
    store.put("status", '{"optime":100}')  # fixed, then broken again the same way: logged again
    dcs.get_cluster()
    store.put("status", '{"optime":1e400}')
    dcs.get_cluster()
    assert len(caplog.records) == 1


def test_a_decoder_bug_gives_an_empty_view_not_an_exception() -> None:
    class Exploding(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    view, problems = keys.decode_checked(Snapshot(nodes=Exploding(), index=7))
    assert view.members == () and view.watch_index == 7 and "boom" in problems[0][1]


def test_schedule_in_range_still_decodes() -> None:
    at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    failover = keys.decode_failover(keys.encode_failover("a", "b", at))
    assert failover is not None and failover.scheduled_at == at


def test_backends_read_bytes_that_are_not_utf8_as_replacement_characters() -> None:
    import base64

    from qhb_patroni.dcs.etcd3 import _unb64

    assert _unb64(base64.b64encode(b"\xff{\x80}").decode()) == "\ufffd{\ufffd}"
    view, problems = keys.decode_checked(keys.snapshot_of({"status": _unb64(base64.b64encode(b"\xff").decode())}))
    assert view.last_lsn == 0 and problems[0][0] == "status"


def test_patronictl_lists_members_whose_tags_are_garbage() -> None:
    from patronictl.render import list_output

    values = {"leader": "a", "members/a": '{"role":"master","state":"running"}',
              "members/b": '{"role":"replica","state":"running","tags":"nope"}',
              "members/c": '{"role":"replica","state":"running","tags":{"replicatefrom":["b"]}}'}
    text = list_output(keys.decode(keys.snapshot_of(values)), "demo", True, "topology")
    assert "| + b " in text and "| + c " in text  # both hang off the leader


@pytest.mark.parametrize("value, valid", [
    ("7214159812345678901", True), ("1234567890", True), ("18446744073709551615", True),
    ("18446744073709551616", False), ("9" * 5000, False), ("123456789", False), ("", False),
    ("\uff11" * 12, False),  # full-width digits are digits to str.isdigit(), not to pg_control
])
def test_initialize_is_a_system_identifier_only_when_it_fits_64_bits(value: str, valid: bool) -> None:
    assert keys.decode(keys.snapshot_of({"initialize": value})).has_valid_initialize is valid


def test_a_lone_surrogate_makes_a_value_invalid() -> None:
    problems: List = []
    member = keys.decode_member("m", '{"state": "\\udcff", "conn_url": "postgres://h:1/d"}', 1, problems)
    assert member.state is None and member.conn_url is None
    assert problems == [("members/m", "a lone surrogate in a string")]
    with pytest.raises(safejson.InvalidValue):
        safejson.loads('{"\\ud800": 1}')
    assert safejson.loads('"\\u00e9\\ud83d\\ude00"') == "\u00e9\U0001f600"  # a proper pair is fine
