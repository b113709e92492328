"""decide() for the Patroni 3.0.2 behaviours of issue 15: a failed pre_promote,
the crashed primary with primary_start_timeout 0, pause."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import PRE_PROMOTE_FAILED_ERROR
from qhb_patroni.core.model import SyncState
from qhb_patroni.core.observation import Decision, Memory, PeerStatus
from qhb_patroni.messages import render

from .builders import NOW, STARTED, cluster, make_obs, peer, primary, replica, settings, stopped, task

S = settings()


def run(obs, memory: Memory = STARTED, s=S) -> Decision:  # type: ignore[no-untyped-def]
    return decide(obs, memory, s)


# ---- pre_promote ---------------------------------------------------------------------
def test_failed_pre_promote_releases_the_lock_and_backs_off() -> None:
    failed = task("Promote", "promote", done=True, error=f"promote failed: {PRE_PROMOTE_FAILED_ERROR}")
    d = run(make_obs(cluster(leader="n0"), replica(), t=failed))
    assert d.actions == (A.ReleaseLock(version=7),)
    assert render(d.reason) == "Promotion cancelled because the pre-promote script failed"
    assert d.memory.release_backoff_until == NOW + S.ttl
    # Next cycle, no leader: it stays out of the race while backing off.
    again = run(make_obs(cluster(), replica(), now=NOW + 1,
                         peers={"n1": peer("n1", lsn=100), "n2": peer("n2", lsn=100)}), d.memory)
    assert not any(isinstance(a, (A.AcquireLock, A.Promote)) for a in again.actions)


def test_other_promote_failures_do_not_release_the_lock() -> None:
    failed = task("Promote", "promote", done=True, error="promote failed: server did not become writable")
    d = run(make_obs(cluster(leader="n0"), replica(), t=failed))
    assert not any(isinstance(a, A.ReleaseLock) for a in d.actions)


def test_failed_pre_promote_without_the_lock_changes_nothing_special() -> None:
    failed = task("Promote", "promote", done=True, error=f"promote failed: {PRE_PROMOTE_FAILED_ERROR}")
    d = run(make_obs(cluster(leader="n1"), replica(), t=failed))
    assert not any(isinstance(a, A.ReleaseLock) for a in d.actions)
    assert replace(d.memory).release_backoff_until is None


# ---- crashed primary, primary_start_timeout 0 -----------------------------------------
ZERO = settings(primary_start_timeout=0)
CRASHED = stopped(state="crashed")


def _timed_peer(name: str, lsn: int = 100, timeline: int = 1, nofailover: bool = False) -> PeerStatus:
    return replace(peer(name, lsn, nofailover=nofailover), timeline=timeline)


def test_crashed_holder_asks_the_others_first() -> None:
    d = run(make_obs(cluster(leader="n0"), CRASHED), s=ZERO)
    assert d.actions == (A.ProbePeers(("n1", "n2")),)


def test_crashed_holder_fails_over_when_a_replica_can_take_over() -> None:
    peers = {"n1": _timed_peer("n1"), "n2": None}
    d = run(make_obs(cluster(leader="n0", last_lsn=100), CRASHED, peers=peers), s=ZERO)
    assert d.actions == (A.ReleaseLock(version=7, demoted=True),)  # released; the server is not started
    assert render(d.reason) == "stopped PostgreSQL to fail over after a crash"
    assert d.reason.args["note"] == "Primary crashed. Failing over."
    assert d.memory.release_backoff_until == NOW + ZERO.ttl and d.memory.crash_start_at is None


def _restarts(d: Decision) -> bool:
    return d.actions == (A.RenewLock(version=7, last_lsn=None), A.StartReadOnlyLeader())


def test_crashed_holder_restarts_when_nobody_can_take_over() -> None:
    c = cluster(leader="n0", last_lsn=10_000_000)
    cases = [
        {"n1": None, "n2": None},  # unreachable
        {"n1": _timed_peer("n1", nofailover=True), "n2": None},  # nofailover
        {"n1": _timed_peer("n1", lsn=100), "n2": None},  # beyond maximum_lag_on_failover
    ]
    for peers in cases:
        d = run(make_obs(c, CRASHED, peers=peers), s=ZERO)
        assert _restarts(d), peers
        assert render(d.reason) == "starting as readonly because i had the session lock"
    alone = cluster(leader="n0", names=("n0",))
    assert _restarts(run(make_obs(alone, CRASHED), s=ZERO))  # nobody to ask: restart at once


def test_crashed_holder_with_the_default_timeout_restarts_without_asking() -> None:
    assert _restarts(run(make_obs(cluster(leader="n0"), CRASHED)))


def test_check_timeline_excludes_a_candidate_behind_the_cluster_timeline() -> None:
    c = replace(cluster(leader="n0"), history=((1, 100, "no recovery target specified", "", "n0"),))
    behind = {"n1": _timed_peer("n1", timeline=1), "n2": None}
    assert _restarts(run(make_obs(c, CRASHED, peers=behind), s=replace(ZERO, check_timeline=True)))
    assert kinds(run(make_obs(c, CRASHED, peers=behind), s=ZERO)) == ["ReleaseLock"]  # check off
    current = {"n1": _timed_peer("n1", timeline=2), "n2": None}
    assert kinds(run(make_obs(c, CRASHED, peers=current), s=replace(ZERO, check_timeline=True))) == ["ReleaseLock"]


def test_synchronous_mode_counts_only_sync_standbys() -> None:
    sync = replace(ZERO, synchronous_mode=True)
    c = replace(cluster(leader="n0"), sync=SyncState(leader="n0", sync_standby=("n2",), version=1))
    d = run(make_obs(c, CRASHED), s=sync)
    assert d.actions == (A.ProbePeers(("n2",)),)
    assert _restarts(run(make_obs(c, CRASHED, peers={"n2": None}), s=sync))
    assert kinds(run(make_obs(c, CRASHED, peers={"n2": _timed_peer("n2")}), s=sync)) == ["ReleaseLock"]


def test_paused_crashed_holder_only_releases_the_lock() -> None:
    c = replace(cluster(leader="n0", config={"ttl": 30, "pause": True}))
    d = run(make_obs(c, CRASHED), s=ZERO)
    assert d.actions == (A.ReleaseLock(version=7),) and "note" not in d.reason.args
    assert render(d.reason) == "removed leader lock because postgres is not running"


# ---- check_timeline in the leader race, max_timelines_history ----------------------------
def test_check_timeline_in_the_race() -> None:
    c = replace(cluster(), history=((1, 100, "no recovery target specified", "", "n9"),))
    peers = {"n1": peer("n1", 90), "n2": None}
    behind = replace(replica(lsn=100), timeline=1)
    d = run(make_obs(c, behind, peers=peers), s=settings(check_timeline=True))
    assert not any(isinstance(a, A.AcquireLock) for a in d.actions)
    assert "timeline 1 is behind last known cluster timeline 2" in str(d.reason.args.get("why"))
    assert kinds(run(make_obs(c, behind, peers=peers))) == ["AcquireLock", "Promote"]


def test_history_is_trimmed_to_max_timelines_history() -> None:
    promoted = task("Promote", "promote", done=True, ok=True)
    d = run(make_obs(cluster(leader="n0"), primary(), t=promoted), s=settings(max_timelines_history=3))
    assert [a for a in d.actions if isinstance(a, A.WriteHistory)] == [A.WriteHistory(keep=3)]
    d = run(make_obs(cluster(leader="n0"), primary(), t=promoted))
    assert [a for a in d.actions if isinstance(a, A.WriteHistory)] == [A.WriteHistory(keep=0)]


def kinds(d: Decision) -> list:  # type: ignore[type-arg]
    return [type(a).__name__ for a in d.actions]
