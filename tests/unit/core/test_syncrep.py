"""Synchronous mode in the pure core (spec 5.11): who is named in /sync, when,
and who may take over."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Optional, Sequence, Tuple

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core import reasons as R
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import ReplicationRow, ReplicationState
from qhb_patroni.core.model import ClusterView, Failover, SyncState
from qhb_patroni.core.syncrep import format_standby_names, leader_sync_step, parse_standby_names, pick

from .builders import STARTED, cluster, make_obs, member, peer, primary, replica, settings

SYNC: Dict[str, Any] = dict(synchronous_mode=True)


def rows(*spec: Tuple[str, str, int]) -> Tuple[ReplicationRow, ...]:
    """(name, sync_state, flush lsn) -> streaming rows."""
    return tuple(ReplicationRow(name=n, state="streaming", sync_state=s, write_lsn=lsn, flush_lsn=lsn,
                                replay_lsn=lsn) for n, s, lsn in spec)


def rep(names: str, *spec: Tuple[str, str, int], lsn: int = 1000, confirm: Optional[int] = None) -> ReplicationState:
    return ReplicationState(rows=rows(*spec), standby_names=names, lsn=lsn, confirm_lsn=confirm)


def led(sync: Optional[SyncState] = None, members: Sequence = (), **kw) -> ClusterView:
    c = cluster(leader="n0", members=members, **kw)
    return replace(c, sync=sync)


def test_standby_names_format_and_parse_round_trip() -> None:
    assert format_standby_names((), 1) == ""
    assert format_standby_names(("n1",), 1) == "n1"
    assert format_standby_names(("n1", "n2"), 2) == "2 (n1,n2)"
    assert format_standby_names(("node-1",), 1) == '"node-1"'
    assert parse_standby_names('2 (n1,"node-1")') == ("n1", "node-1")
    assert parse_standby_names("FIRST 1 (a, b)") == ("a", "b")
    assert parse_standby_names("ANY 2 (a,b,c)") == ("a", "b", "c")
    assert parse_standby_names("*") == ("*",)
    assert parse_standby_names("") == ()
    assert parse_standby_names(format_standby_names(('we"ird', "x"), 2)) == ('we"ird', "x")


def test_sync_mode_off_deletes_a_leftover_sync_key_and_restores_the_configured_value() -> None:
    c = led(SyncState(leader="n0", sync_standby=("n1",), version=4))
    step = leader_sync_step(c, settings(), None)
    assert step.actions == (A.DeleteSync(4), A.SetSyncStandbyNames(None))
    assert leader_sync_step(led(), settings(), None).actions == ()


def test_leader_first_reads_the_replication_state() -> None:
    step = leader_sync_step(led(), settings(**SYNC), None)
    assert step.probe == A.ProbeReplication()
    assert step.actions == ()


def test_first_claims_sync_then_names_the_best_streaming_standby() -> None:
    step = leader_sync_step(led(), settings(**SYNC), rep("", ("n1", "async", 900), ("n2", "async", 950)))
    # /sync claimed with nobody in it *before* the server starts waiting for n2.
    assert step.actions == (A.WriteSync("n0", (), None), A.SetSyncStandbyNames("n2"))


def test_a_standby_enters_sync_only_once_confirmed_past_the_position_read_after_the_change() -> None:
    c = led(SyncState(leader="n0", sync_standby=(), version=5))
    s = settings(**SYNC)
    # In effect and synchronous, but not yet confirmed: ask for a confirmation.
    step = leader_sync_step(c, s, rep("n2", ("n2", "sync", 950), ("n1", "async", 900)))
    assert step.probe == A.ProbeReplication(confirm=("n2",))
    # Confirmed: n2 reached the position read first.
    ok = leader_sync_step(c, s, rep("n2", ("n2", "sync", 1000), ("n1", "async", 900), confirm=1000))
    assert ok.actions == (A.WriteSync("n0", ("n2",), 5),)
    # Not yet there: /sync stays empty this cycle.
    behind = leader_sync_step(c, s, rep("n2", ("n2", "sync", 990), confirm=1000))
    assert behind.actions == ()
    # Synchronous in the view but not listed in the value in effect: never confirmed.
    unlisted = leader_sync_step(c, s, rep("n2", ("n2", "potential", 2000), confirm=1000))
    assert unlisted.actions == ()


def test_a_steady_state_changes_nothing() -> None:
    c = led(SyncState(leader="n0", sync_standby=("n2",), version=5))
    step = leader_sync_step(c, settings(**SYNC), rep("n2", ("n2", "sync", 1000), ("n1", "potential", 1000)))
    assert step.actions == () and step.probe is None


def test_a_lost_sync_standby_leaves_sync_before_the_server_stops_waiting_for_it() -> None:
    c = led(SyncState(leader="n0", sync_standby=("n2",), version=5))
    step = leader_sync_step(c, settings(**SYNC), rep("n2", ("n1", "async", 900)))
    assert step.actions == (A.WriteSync("n0", (), 5), A.SetSyncStandbyNames("n1"))
    nobody = leader_sync_step(c, settings(**SYNC), rep("n2"))
    assert nobody.actions == (A.WriteSync("n0", (), 5), A.SetSyncStandbyNames(""))


def test_strict_mode_waits_for_anybody_when_nobody_streams() -> None:
    c = led(SyncState(leader="n0", sync_standby=(), version=5))
    step = leader_sync_step(c, settings(synchronous_mode=True, synchronous_mode_strict=True), rep(""))
    assert step.actions == (A.SetSyncStandbyNames("*"),)


def test_candidates_skip_nosync_stopped_and_unknown_members_and_put_nofailover_last() -> None:
    members = (
        member("n0", role="master"),
        member("n1", tags={"nosync": True}),
        member("n2", tags={"nofailover": True}),
        member("n3", state="stopped"),
        member("n4"),
        member("n5"),
    )
    c = led(members=members)
    r = rep("", ("n1", "async", 999), ("n2", "async", 999), ("n3", "async", 999), ("n4", "async", 10),
            ("n5", "async", 20), ("stranger", "async", 999))
    assert pick(c, r, settings(synchronous_node_count=3, **SYNC)) == ("n5", "n4", "n2")
    assert pick(c, r, settings(synchronous_node_count=1, **SYNC)) == ("n5",)
    step = leader_sync_step(c, settings(synchronous_node_count=2, **SYNC), r)
    assert A.SetSyncStandbyNames("2 (n5,n4)") in step.actions


def test_a_current_sync_standby_is_preferred_and_lagging_ones_are_skipped() -> None:
    c = led()
    r = rep("n1", ("n1", "sync", 500), ("n2", "potential", 900), lsn=1000)
    assert pick(c, r, settings(**SYNC)) == ("n1",)
    assert pick(c, r, settings(maximum_lag_on_syncnode=100, **SYNC)) == ("n2",)
    only = rep("n1", ("n1", "sync", 500), lsn=1000)
    assert pick(c, only, settings(maximum_lag_on_syncnode=100, **SYNC)) == ()


def test_an_unreadable_replication_state_changes_nothing() -> None:
    c = led(SyncState(leader="n0", sync_standby=("n2",), version=5))
    assert leader_sync_step(c, settings(**SYNC), ReplicationState(error="timeout")).actions == ()


# ---- through decide() ----------------------------------------------------------------


def test_the_lock_holder_asks_for_the_replication_state_then_manages_sync() -> None:
    c = led()
    s = settings(**SYNC)
    first = decide(make_obs(c, primary(lsn=1000)), STARTED, s)
    assert first.actions == (A.ProbeReplication(),)
    assert first.reason.code == R.PROBING_REPLICATION
    obs = replace(make_obs(c, primary(lsn=1000)), replication=rep("", ("n1", "async", 1000)))
    second = decide(obs, STARTED, s)
    assert isinstance(second.actions[0], A.RenewLock)
    sync_acts = tuple(a for a in second.actions if isinstance(a, (A.WriteSync, A.SetSyncStandbyNames)))
    assert sync_acts == (A.WriteSync("n0", (), None), A.SetSyncStandbyNames("n1"))
    assert second.reason.code == R.NO_ACTION_LEADER


def test_promotion_in_sync_mode_claims_sync_and_waits_for_nobody_first() -> None:
    c = replace(cluster(leader=None), sync=SyncState(leader="n0", sync_standby=("n1",), version=8))
    s = settings(name="n1", **SYNC)
    peers = {"n0": None, "n2": peer("n2", lsn=100)}
    d = decide(make_obs(c, replica(lsn=100), me="n1", peers=peers), STARTED, s)
    assert d.actions == (A.AcquireLock(), A.WriteSync("n1", (), 8), A.SetSyncStandbyNames(""),
                         A.Promote(slots=("n0", "n2")))
    strict = decide(make_obs(c, replica(lsn=100), me="n1", peers=peers), STARTED,
                    settings(name="n1", synchronous_mode=True, synchronous_mode_strict=True))
    assert A.SetSyncStandbyNames("*") in strict.actions


def test_promotion_is_postponed_when_somebody_else_updated_sync() -> None:
    c = replace(cluster(leader="n1"), sync=SyncState(leader="n2", sync_standby=(), version=9))
    d = decide(make_obs(c, replica(lsn=100), me="n1", failed=A.WriteSync("n1", (), 8)), STARTED,
               settings(name="n1", **SYNC))
    assert d.reason.code == R.SYNC_POSTPONED
    assert not any(isinstance(a, (A.Promote, A.WriteSync)) for a in d.actions)
    assert isinstance(d.actions[0], A.RenewLock)


def test_only_sync_members_race_for_a_free_lock() -> None:
    c = replace(cluster(leader=None), sync=SyncState(leader="n0", sync_standby=("n1",), version=8))
    # n2 is not synchronous: it may lack acknowledged commits, whatever its position.
    d = decide(make_obs(c, replica(lsn=5000), me="n2", peers={"n0": None, "n1": peer("n1", lsn=10)}),
               STARTED, settings(name="n2", **SYNC))
    assert not any(isinstance(a, A.AcquireLock) for a in d.actions)
    assert d.reason.args.get("why") == "not a synchronous standby"
    # n1 only asks the other /sync member, and wins although n2 is further ahead.
    ask = decide(make_obs(c, replica(lsn=10), me="n1"), STARTED, settings(name="n1", **SYNC))
    assert ask.actions == (A.ProbePeers(("n0",)),)
    win = decide(make_obs(c, replica(lsn=10), me="n1", peers={"n0": None, "n2": peer("n2", lsn=5000)}),
                 STARTED, settings(name="n1", **SYNC))
    assert A.AcquireLock() in win.actions
    # Outside synchronous mode the same /sync key does not restrict anybody.
    free = decide(make_obs(c, replica(lsn=5000), me="n2", peers={"n0": None, "n1": peer("n1", lsn=10)}),
                  STARTED, settings(name="n2"))
    assert A.AcquireLock() in free.actions


def test_the_former_primary_ahead_of_the_sync_standby_does_not_stop_it() -> None:
    c = replace(cluster(leader=None), sync=SyncState(leader="n0", sync_standby=("n1",), version=8))
    d = decide(make_obs(c, replica(lsn=10), me="n1", peers={"n0": peer("n0", lsn=50)}), STARTED,
               settings(name="n1", **SYNC))
    assert A.AcquireLock() in d.actions


@pytest.mark.parametrize("candidate,handed_over", [("n1", True), ("n2", False)])
def test_switchover_hands_over_only_to_a_sync_standby(candidate: str, handed_over: bool) -> None:
    c = replace(led(SyncState(leader="n0", sync_standby=("n1",), version=5),
                    failover=Failover(leader="n0", candidate=candidate, version=3)))
    obs = replace(make_obs(c, primary(lsn=1000), peers={candidate: peer(candidate, lsn=1000)}),
                  replication=rep("n1", ("n1", "sync", 1000)), streaming=("n1", "n2"))
    d = decide(obs, STARTED, settings(**SYNC))
    assert any(isinstance(a, A.Demote) for a in d.actions) is handed_over
    if not handed_over:
        assert A.ClearFailover(version=3) in d.actions
        assert "no healthy members" in d.reason.args.get("warning", "")
