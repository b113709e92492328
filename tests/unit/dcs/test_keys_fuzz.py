"""Property-based fuzzing of every DCS key decoder (issue 12): whatever a key
holds, decoding never raises, nothing non-finite or out of range reaches the
view, the REST API can render it, and valid values round-trip through the encoders."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict

from hypothesis import given
from hypothesis import strategies as st

from patronictl.render import list_output
from qhb_patroni.api.views import cluster_json, history_json
from qhb_patroni.dcs import keys, safejson
from tests.fixtures.fuzz import FUZZ

KEYS = ("config", "leader", "status", "sync", "history", "failsafe", "failover",
        "members/a", "members/b", "initialize", "optime/leader")
HOSTILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "2030-01-01T00:00:00", "9999-12-31T23:59:59-01:00",
                     "2030-01-01T00:00:00+00:00", "postgres://h:99999/d", "\x00\n'", "Infinity", "\udcff"]),
)
JSON_VALUES = st.recursive(HOSTILE_SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=20)
FIELDS = ("conn_url", "api_url", "state", "role", "xlog_location", "timeline", "tags", "leader", "member",
          "scheduled_at", "sync_standby", "optime", "slots", "ttl", "loop_wait", "postgresql", "pause")


@st.composite
def hostile_text(draw: Any) -> str:
    kind = draw(st.sampled_from(["json", "fields", "text", "bytes", "deep"]))
    if kind == "json":  # Python's json writes NaN / Infinity: exactly the hostile spellings
        return json.dumps(draw(JSON_VALUES))
    if kind == "fields":  # a plausible object with hostile field values
        obj = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6))
        return json.dumps(obj)
    if kind == "bytes":  # what the backends hand over for bytes that are not UTF-8
        return draw(st.binary(max_size=40)).decode("utf-8", "replace")
    if kind == "deep":
        n = draw(st.integers(1, 5000))
        return draw(st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n]))
    return draw(st.text(max_size=40))


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), hostile_text(), max_size=6))
def test_fuzz_decode_never_raises_and_the_view_is_sane(values: Dict[str, str]) -> None:
    view, problems = keys.decode_checked(keys.snapshot_of(values))
    assert all(key for key, _ in problems), problems  # the last-resort guard never fired
    assert 0 <= view.last_lsn <= safejson.MAX_LSN
    assert all(0 <= lsn <= safejson.MAX_LSN for lsn in view.slots.values())
    for member in view.members:
        assert member.xlog_location is None or 0 <= member.xlog_location <= safejson.MAX_LSN
        assert member.timeline is None or 1 <= member.timeline <= safejson.MAX_TIMELINE
        for attr in (member.conn_url, member.api_url, member.state, member.role):
            assert attr is None or isinstance(attr, str)
        member.host_port  # noqa: B018 - must not raise
    if view.failover is not None and view.failover.scheduled_at is not None:
        assert view.failover.scheduled_at.tzinfo is not None
        view.failover.scheduled_at.timestamp()
    assert view.timeline >= 1
    # The REST API renders whatever was decoded, as strict JSON.
    json.dumps(cluster_json(view), allow_nan=False, ensure_ascii=False).encode("utf-8")
    json.dumps(history_json(view), allow_nan=False, ensure_ascii=False).encode("utf-8")
    if view.config is not None:
        json.dumps(dict(view.config.data), allow_nan=False)
    for fmt in ("pretty", "tsv", "json", "yaml", "topology"):  # and so does `patronictl list`
        list_output(view, "demo", True, fmt).encode("utf-8")  # printable


NAMES = st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=10)
TIMES = st.datetimes(min_value=dt.datetime(1971, 1, 2), max_value=dt.datetime(9998, 12, 30),
                     timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                                dt.timezone(dt.timedelta(hours=-8))]))
LSNS = st.integers(0, safejson.MAX_LSN)


@FUZZ
@given(NAMES, st.one_of(st.none(), NAMES), st.one_of(st.none(), TIMES))
def test_fuzz_failover_round_trip(leader: str, candidate: Any, at: Any) -> None:
    failover = keys.decode_failover(keys.encode_failover(leader, candidate, at), 4)
    assert failover is not None
    assert (failover.leader, failover.candidate, failover.scheduled_at) == (leader, candidate, at)


@FUZZ
@given(LSNS, st.dictionaries(NAMES, LSNS, max_size=4), st.one_of(st.none(), NAMES),
       st.sets(NAMES, max_size=4), st.dictionaries(NAMES, NAMES, max_size=4),
       st.lists(st.tuples(st.integers(1, safejson.MAX_TIMELINE), LSNS, st.text(max_size=10)), max_size=4))
def test_fuzz_round_trips(optime: int, slots: Dict[str, int], leader: Any, standbys: Any,
                          failsafe: Dict[str, str], history: Any) -> None:
    assert keys.decode_status(keys.encode_status(optime, slots)) == (optime, slots)
    sync = keys.decode_sync(keys.encode_sync(leader, standbys))
    assert (sync.leader, set(sync.sync_standby)) == (leader, set(standbys))
    assert keys.decode_failsafe(keys.encode_failsafe(failsafe)) == failsafe
    assert keys.decode_history(keys.encode_history(history)) == tuple(tuple(h) for h in history)


@FUZZ
@given(st.fixed_dictionaries({"conn_url": NAMES, "api_url": NAMES, "state": NAMES, "role": st.sampled_from(
    ["master", "replica", "standby_leader"]), "xlog_location": LSNS, "timeline": st.integers(1, 2**32 - 1),
    "tags": st.dictionaries(NAMES, st.one_of(st.booleans(), NAMES), max_size=3)}))
def test_fuzz_member_round_trip(data: Dict[str, Any]) -> None:
    problems: list = []
    member = keys.decode_member("m", keys.encode_member(data), 1, problems)
    assert problems == []
    assert (member.conn_url, member.api_url, member.state, member.role, member.xlog_location,
            member.timeline, dict(member.tags)) == (data["conn_url"], data["api_url"], data["state"],
                                                    data["role"], data["xlog_location"], data["timeline"],
                                                    data["tags"])
