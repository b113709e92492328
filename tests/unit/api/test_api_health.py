"""Health-check matrix (spec 1.4) and probes (1.5), table-driven."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional

import pytest

from qhb_patroni.api import health
from qhb_patroni.runtime.status import StatusView
from tests.fixtures.api import (
    NOW,
    cluster,
    member,
    primary_server,
    replica_server,
    status_view,
    two_node_cluster,
)

REPLAYED = 50331900  # replica_server().replayed_location

# ---- scenarios -------------------------------------------------------------------

SCENARIOS: Dict[str, StatusView] = {
    # primary holding the lock, ordinary cluster
    "primary": status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True),
    # streaming replica, fresh DCS view, synchronous mode off
    "replica": status_view("postgresql1", replica_server(), two_node_cluster()),
    # replica listed in /sync with synchronous_mode on
    "sync": status_view(
        "postgresql1",
        replica_server(),
        two_node_cluster(sync=["postgresql1"], config={"synchronous_mode": True}),
    ),
    # standby leader of a standby cluster, holding the lock
    "standby_leader": status_view(
        "postgresql0",
        replica_server(role="standby_leader"),
        two_node_cluster(config={"standby_cluster": {"host": "10.9.9.9", "port": 5432}}),
        holds_lock=True,
    ),
    # promoted by hand without the lock (someone else holds it): not a primary for us
    "rogue": status_view("postgresql1", primary_server(), two_node_cluster()),
    # the lock name is ours but the local lease ran out
    "lease_expired": status_view(
        "postgresql0", primary_server(), two_node_cluster(), lease_until=NOW - 1
    ),
    # paused and the DCS view is gone: roles from the database decide
    "paused_nodcs_primary": status_view("postgresql0", primary_server(), None, paused=True),
    "paused_nodcs_standby_leader": status_view(
        "postgresql0", replica_server(role="standby_leader"), None, paused=True
    ),
    # not paused and no DCS view
    "nodcs_primary": status_view("postgresql0", primary_server(), None),
    "nodcs_replica": status_view("postgresql1", replica_server(), None),
    "stale_replica": status_view("postgresql1", replica_server(), two_node_cluster(), fresh=False),
    # replica that is still starting / marked noloadbalance
    "starting": status_view("postgresql1", replica_server(state="starting"), two_node_cluster()),
    "noloadbalance": status_view(
        "postgresql1", replica_server(), two_node_cluster(), tags={"noloadbalance": True}
    ),
    "stopped": status_view(
        "postgresql1", replica_server(state="stopped", query_ok=False, in_recovery=None), two_node_cluster()
    ),
    # the lock is ours but the promotion has not finished: writes would still fail
    "promoting": status_view("postgresql0", replica_server(), two_node_cluster(), holds_lock=True),
    # the lock is ours but the postmaster is gone
    "lock_server_down": status_view(
        "postgresql0", primary_server(state="crashed", query_ok=False, in_recovery=None, role="master"),
        two_node_cluster(), holds_lock=True,
    ),
}

PATHS = [
    "/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/standby_leader",
    "/replica", "/read-only", "/health", "/sync", "/synchronous", "/async", "/asynchronous",
    "/read-only-sync", "/read-only-synchronous", "/foo",
]  # fmt: skip

# One row per scenario, one column per path in PATHS (2 = 200, 5 = 503, to keep the table readable).
# fmt: off
MATRIX = {
    #                              /  pri mas rw  ldr sl- sl_ rep ro  hlt syn synch asy asynch ros rosync foo
    "primary":                    [2, 2,  2,  2,  2,  5,  5,  5,  2,  2,  5,  5,    5,  5,     2,  2,     5],
    "replica":                    [5, 5,  5,  5,  5,  5,  5,  2,  2,  2,  5,  5,    2,  2,     5,  5,     5],
    "sync":                       [5, 5,  5,  5,  5,  5,  5,  2,  2,  2,  2,  2,    5,  5,     2,  2,     5],
    "standby_leader":             [5, 5,  5,  5,  2,  2,  2,  5,  2,  2,  5,  5,    5,  5,     2,  2,     5],
    "rogue":                      [5, 5,  5,  5,  5,  5,  5,  5,  5,  2,  5,  5,    5,  5,     5,  5,     5],
    "lease_expired":              [5, 5,  5,  5,  5,  5,  5,  5,  5,  2,  5,  5,    5,  5,     5,  5,     5],
    "paused_nodcs_primary":       [2, 2,  2,  2,  2,  5,  5,  5,  2,  2,  5,  5,    5,  5,     5,  5,     5],
    "paused_nodcs_standby_leader": [5, 5, 5,  5,  2,  2,  2,  5,  2,  2,  5,  5,    5,  5,     5,  5,     5],
    "nodcs_primary":              [5, 5,  5,  5,  5,  5,  5,  5,  5,  2,  5,  5,    5,  5,     5,  5,     5],
    "nodcs_replica":              [5, 5,  5,  5,  5,  5,  5,  2,  2,  2,  5,  5,    5,  5,     5,  5,     5],
    "stale_replica":              [5, 5,  5,  5,  5,  5,  5,  2,  2,  2,  5,  5,    5,  5,     5,  5,     5],
    "starting":                   [5, 5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,    5,  5,     5,  5,     5],
    "noloadbalance":              [5, 5,  5,  5,  5,  5,  5,  5,  5,  2,  5,  5,    5,  5,     5,  5,     5],
    "stopped":                    [5, 5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,    5,  5,     5,  5,     5],
    "promoting":                  [5, 5,  5,  5,  2,  5,  5,  2,  2,  2,  5,  5,    2,  2,     5,  5,     5],
    "lock_server_down":           [5, 5,  5,  5,  2,  5,  5,  5,  5,  5,  5,  5,    5,  5,     5,  5,     5],
}
# fmt: on

CASES = [
    pytest.param(name, path, {2: 200, 5: 503}[row[i]], id=f"{name}{path}")
    for name, row in MATRIX.items()
    for i, path in enumerate(PATHS)
]


def test_matrix_is_complete() -> None:
    assert set(MATRIX) == set(SCENARIOS)
    assert all(len(row) == len(PATHS) for row in MATRIX.values())


@pytest.mark.parametrize("scenario,path,expected", CASES)
def test_health_matrix(scenario: str, path: str, expected: int) -> None:
    code, body = health.health_check(SCENARIOS[scenario], NOW, path, {})
    assert code == expected
    assert body is not None and body["patroni"] == {"version": "3.0.2", "scope": "batman"}


@pytest.mark.parametrize(
    "path,expected_like",
    [
        ("/replica-anything", "/replica"),
        ("/leaderboard", "/leader"),
        ("/xprimaryx", "/primary"),
        ("/read-only-whatever", "/read-only"),
        ("/healthz", "/health"),
        ("/sync/", "/foo"),  # sync/async are exact matches
        ("/read-only-sync-x", "/foo"),
    ],
)
def test_substring_dispatch(path: str, expected_like: str) -> None:
    for view in SCENARIOS.values():
        assert health.health_check(view, NOW, path, {})[0] == health.health_check(view, NOW, expected_like, {})[0]


# ---- lag= -------------------------------------------------------------------------


def lagging_replica(behind: int) -> StatusView:
    c = two_node_cluster(last_lsn=REPLAYED + behind)
    return status_view("postgresql1", replica_server(), c)


@pytest.mark.parametrize(
    "lag,expected",
    [
        (None, 200),
        ("1999", 503),
        ("2000", 200),
        ("1999B", 503),
        ("2000B", 200),
        ("1kB", 503),
        ("2kB", 200),
        ("1MB", 200),
        ("1GB", 200),
        ("garbage", 200),  # unparsable -> no limit
        ("-5", 200),
        ("2 kB", 200),
        ("1.5kB", 200),  # not an integer -> ignored
    ],
)
def test_lag_limit_on_replica(lag: Optional[str], expected: int) -> None:
    view = lagging_replica(2000)
    query = {} if lag is None else {"lag": lag}
    assert health.health_check(view, NOW, "/replica", query)[0] == expected
    assert health.health_check(view, NOW, "/read-only", query)[0] == expected
    assert health.health_check(view, NOW, "/async", query)[0] == expected


def test_lag_does_not_touch_primary_and_unknown_leader_optime() -> None:
    primary = SCENARIOS["primary"]
    assert health.health_check(primary, NOW, "/read-only", {"lag": "0"})[0] == 200
    # leader optime 0 (unknown): never lagging
    assert health.health_check(lagging_replica(-REPLAYED), NOW, "/replica", {"lag": "0"})[0] == 200
    assert health.health_check(lagging_replica(1), NOW, "/replica", {"lag": "0"})[0] == 503


@pytest.mark.parametrize(
    "text,value",
    [("0", 0), ("17", 17), ("3B", 3), ("16kB", 16384), ("10MB", 10485760), ("2GB", 2 * 1024**3),
     ("1TB", 1024**4), ("1mb", None), ("kB", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_size(text: Optional[str], value: Optional[int]) -> None:
    assert health.parse_size(text) == value


# ---- tag_ filters ---------------------------------------------------------------------

TAGGED = replace(
    SCENARIOS["replica"], tags={"zone": "a", "nofailover": True, "weight": 1.4, "clonefrom": False}
)
TAGGED_PRIMARY = replace(SCENARIOS["primary"], tags={"zone": "a"})


@pytest.mark.parametrize(
    "view,path,query,expected",
    [
        (TAGGED, "/replica", {"tag_zone": "a"}, 200),
        (TAGGED, "/replica", {"tag_zone": "b"}, 503),
        (TAGGED, "/replica", {"tag_missing": "x"}, 503),
        (TAGGED, "/replica", {"tag_nofailover": "true"}, 200),
        (TAGGED, "/replica", {"tag_nofailover": "True"}, 503),
        (TAGGED, "/replica", {"tag_weight": "1.4"}, 200),
        (TAGGED, "/replica", {"tag_clonefrom": "false"}, 200),
        (TAGGED, "/replica", {"tag_zone": "a", "tag_weight": "2"}, 503),
        (TAGGED, "/replica", {"zone": "b", "other": "x"}, 200),  # non-tag parameters are ignored
        (TAGGED, "/read-only", {"tag_zone": "b"}, 503),
        (TAGGED, "/health", {"tag_zone": "b"}, 503),
        (TAGGED, "/async", {"tag_zone": "b"}, 503),
        (TAGGED, "/async", {"tag_zone": "a"}, 200),
        # leader-ish paths ignore tag filters
        (TAGGED_PRIMARY, "/primary", {"tag_zone": "b"}, 200),
        (TAGGED_PRIMARY, "/leader", {"tag_zone": "b"}, 200),
        (TAGGED_PRIMARY, "/", {"tag_zone": "b"}, 200),
        (TAGGED_PRIMARY, "/read-only", {"tag_zone": "b"}, 503),
        (TAGGED_PRIMARY, "/read-only", {"tag_zone": "a"}, 200),
    ],
)
def test_tag_filters(view: StatusView, path: str, query: Dict[str, str], expected: int) -> None:
    assert health.health_check(view, NOW, path, query)[0] == expected


# ---- probes (1.5) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "view,next_cycle_at,expected",
    [
        (SCENARIOS["primary"], None, 200),
        (SCENARIOS["primary"], NOW - 29, 200),
        (SCENARIOS["primary"], NOW - 31, 503),
        (SCENARIOS["replica"], NOW - 31, 200),
        (SCENARIOS["replica"], NOW - 59, 200),
        (SCENARIOS["replica"], NOW - 61, 503),
        (SCENARIOS["stopped"], NOW - 61, 503),
        (replace(SCENARIOS["primary"], paused=True), NOW - 1000, 200),
        (replace(SCENARIOS["primary"], server=primary_server(state="stopped", query_ok=False)), NOW - 31, 200),
    ],
)
def test_liveness(view: StatusView, next_cycle_at: Optional[float], expected: int) -> None:
    v = replace(view, next_cycle_at=next_cycle_at)
    assert health.liveness(v, NOW) == expected
    assert health.probe(v, NOW, "/liveness", {}) == (expected, None)


@pytest.mark.parametrize(
    "scenario,expected",
    [
        ("primary", 200),
        ("replica", 200),
        ("stale_replica", 503),
        ("nodcs_replica", 503),
        ("starting", 503),
        ("stopped", 503),
        ("rogue", 200),  # running with a valid DCS view
    ],
)
def test_readiness(scenario: str, expected: int) -> None:
    assert health.readiness(SCENARIOS[scenario], NOW) == expected
    assert health.probe(SCENARIOS[scenario], NOW, "/readiness", {}) == (expected, None)


def test_readiness_lock_holder_even_when_not_running() -> None:
    view = replace(SCENARIOS["primary"], server=primary_server(state="starting", query_ok=False))
    assert health.readiness(view, NOW) == 200
    assert health.readiness(replace(view, lease_until=None), NOW) == 503


def test_probe_of_other_paths_is_a_health_check() -> None:
    code, body = health.probe(SCENARIOS["replica"], NOW, "/replica", {})
    assert code == 200 and body is not None and body["role"] == "replica"


def test_sync_uses_the_dcs_view_of_other_members() -> None:
    # the node is listed in /sync but the DCS view expired -> /sync falls to "anything else"
    c = cluster(
        [member("postgresql0", role="master"), member("postgresql1", xlog_location=1)],
        leader="postgresql0",
        sync=["postgresql1"],
        config={"synchronous_mode": True},
    )
    fresh = status_view("postgresql1", replica_server(), c)
    stale = status_view("postgresql1", replica_server(), c, fresh=False)
    assert health.health_check(fresh, NOW, "/sync", {})[0] == 200
    assert health.health_check(stale, NOW, "/sync", {})[0] == 503


@pytest.mark.parametrize("lag", ["9" * 21, "9" * 5000, "18446744073709551616", "16777216TB"])
def test_lag_too_large_to_convert_is_a_query_error(lag: str) -> None:
    with pytest.raises(health.QueryError):
        health.health_check(lagging_replica(2000), NOW, "/replica", {"lag": lag})


def test_largest_lag_is_accepted() -> None:
    assert health.parse_size("18446744073709551615") == 2**64 - 1
    assert health.parse_size("0" * 30 + "5") == 5  # leading zeros are not "large"
