"""decide() case by case (continued): manual failover / switchover and pause."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision
from qhb_patroni.messages import render

from .builders import (
    STARTED,
    cluster,
    hostport,
    make_obs,
    peer,
    primary,
    replica,
    settings,
    stopped,
)

S = settings()


def run(obs, memory=STARTED, s=S) -> Decision:  # type: ignore[no-untyped-def]
    return decide(obs, memory, s)


def kinds(d: Decision) -> list:  # type: ignore[type-arg]
    return [type(a).__name__ for a in d.actions]


# ---- manual failover / switchover (5.8) ------------------------------------------------------------
def _fo(**kw):  # type: ignore[no-untyped-def]
    from qhb_patroni.core.model import Failover

    return Failover(version=9, **kw)


def test_switchover_leader_probes_candidate_then_demotes_gracefully() -> None:
    c = replace(cluster(leader="n0"), failover=_fo(leader="n0", candidate="n1"))
    local = primary(lsn=500, slots=("n1", "n2"))
    d = run(make_obs(c, local))
    assert d.actions == (A.ProbePeers(("n1",)),)
    d2 = run(make_obs(c, local, peers={"n1": peer("n1", 500)}))
    # One effect per action: a clean stop, the lock handed over with the shutdown position, then
    # the start as a replica.
    assert d2.actions == (A.RenewLock(version=7, last_lsn=500), A.StopServer("fast", checkpoint=True),
                          A.ReleaseLock(stopped_position=True), A.Demote("graceful", None))
    assert render(d2.reason) == "manual failover: demoting myself"


def test_switchover_to_unhealthy_candidate_is_cleared() -> None:
    c = replace(cluster(leader="n0"), failover=_fo(leader="n0", candidate="n1"))
    d = run(make_obs(c, primary(lsn=500, slots=("n1", "n2")), peers={"n1": None}))
    assert d.actions == (A.RenewLock(version=7, last_lsn=500), A.ClearFailover(version=9))
    assert d.reason.args["warning"] == "manual failover: no healthy members found, failover is not possible"


def test_switchover_naming_another_leader_is_cleared() -> None:
    c = replace(cluster(leader="n0"), failover=_fo(leader="n2", candidate="n1"))
    d = run(make_obs(c, primary(lsn=5, slots=("n1", "n2"))))
    assert d.actions == (A.RenewLock(version=7, last_lsn=5), A.ClearFailover(version=9))
    assert d.reason.args["warning"] == "leader name does not match"


def test_scheduled_switchover_waits_until_due() -> None:
    import datetime as dt

    at = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    c = replace(cluster(leader="n0"), failover=_fo(leader="n0", candidate="n1", scheduled_at=at))
    local = primary(lsn=5, slots=("n1", "n2"))
    early = replace(make_obs(c, local), wall_time=at.timestamp() - 60)
    d = run(early)
    assert d.actions == (A.RenewLock(version=7, last_lsn=5),)
    assert d.reason.args["warning"].startswith("Awaiting failover at 2030-01-01T00:00:00+00:00 (in 60 seconds)")
    due = replace(make_obs(c, local, peers={"n1": peer("n1", 5)}), wall_time=at.timestamp() + 1)
    assert kinds(run(due)) == ["RenewLock", "StopServer", "ReleaseLock", "Demote"]
    stale = replace(make_obs(c, local), wall_time=at.timestamp() + 100)
    assert kinds(run(stale)) == ["RenewLock", "ClearFailover"]


def test_candidate_wins_the_race_and_clears_the_key() -> None:
    c = replace(cluster(), failover=_fo(leader="n1", candidate="n0"))
    d = run(make_obs(c, replica(lsn=10)))
    assert d.actions == (A.AcquireLock(), A.Promote(slots=("n1", "n2")), A.ClearFailover(version=9))


def test_others_leave_the_race_to_a_healthy_candidate() -> None:
    c = replace(cluster(), failover=_fo(leader="n1", candidate="n2"))
    d = run(make_obs(c, replica(lsn=999)))
    assert kinds(d) == ["ProbePeers"] and "n2" in d.actions[0].names  # type: ignore[union-attr]
    d2 = run(make_obs(c, replica(lsn=999), peers={"n1": peer("n1", 5), "n2": peer("n2", 5)}))
    assert d2.actions == ()
    d3 = run(make_obs(c, replica(lsn=999), peers={"n1": peer("n1", 5), "n2": None}))
    assert kinds(d3) == ["AcquireLock", "Promote", "ClearFailover"]


def test_former_leader_steps_back_when_someone_can_take_over() -> None:
    c = replace(cluster(), failover=_fo(leader="n0"))
    d = run(make_obs(c, replica(lsn=999), peers={"n1": peer("n1", 5), "n2": None}))
    assert d.actions == ()
    d2 = run(make_obs(c, replica(lsn=999), peers={"n1": None, "n2": None}))
    assert kinds(d2) == ["AcquireLock", "Promote", "ClearFailover"]


def test_switchover_without_candidate_excludes_former_leader_and_lag() -> None:
    c = replace(cluster(last_lsn=10_000_000), failover=_fo(leader="n1"))
    d = run(make_obs(c, replica(lsn=100), peers={"n1": peer("n1", 10_000_000), "n2": peer("n2", 50)}))
    assert kinds(d) == ["AcquireLock", "Promote", "ClearFailover"]


# ---- pause (5.13) -------------------------------------------------------------------------------------
def _paused(c):  # type: ignore[no-untyped-def]
    from qhb_patroni.core.model import ClusterConfig

    return replace(c, config=ClusterConfig({"pause": True}, version=2))


def test_paused_primary_without_lock_is_left_alone() -> None:
    d = run(make_obs(_paused(cluster(leader="n1")), primary()))
    assert d.actions == ()
    assert render(d.reason) == "continue to run as primary without lock"


def test_paused_renew_failure_keeps_primary() -> None:
    d = run(make_obs(_paused(cluster(leader="n0")), primary(), failed=A.RenewLock(7, 100)))
    assert d.actions == ()
    assert render(d.reason) == "continue to run as primary after failing to update leader lock in DCS"


def test_paused_leader_renews_as_usual() -> None:
    d = run(make_obs(_paused(cluster(leader="n0")), primary(lsn=3, slots=("n1", "n2"))))
    assert d.actions == (A.RenewLock(version=7, last_lsn=3),)


def test_paused_stopped_server_is_not_started() -> None:
    d = run(make_obs(_paused(cluster(leader="n1")), stopped()))
    assert d.actions == () and render(d.reason) == "postgres is not running"
    d2 = run(make_obs(_paused(cluster(leader="n0")), stopped()))
    assert d2.actions == (A.ReleaseLock(version=7),)
    assert render(d2.reason) == "removed leader lock because postgres is not running"


def test_paused_holder_that_is_not_primary_releases() -> None:
    d = run(make_obs(_paused(cluster(leader="n0")), replica()))
    assert d.actions == (A.ReleaseLock(version=7),)
    assert render(d.reason) == "removed leader lock because postgres is not running as primary"


def test_paused_replica_without_leader_does_nothing_and_never_races() -> None:
    d = run(make_obs(_paused(cluster()), replica(lsn=999, following=hostport("n1"))))
    assert d.actions == ()
    assert render(d.reason) == "no action. I am (n0)"


def test_paused_replica_still_repoints_to_the_leader() -> None:
    c = _paused(cluster(leader="n1"))
    d = run(make_obs(c, replica(following=hostport("n2"), slot="n0")))
    assert d.actions == (A.Follow(c.leader.member),)  # type: ignore[union-attr]


def test_paused_unlocked_primary_takes_the_lock() -> None:
    d = run(make_obs(_paused(cluster()), primary()))
    assert d.actions == (A.AcquireLock(),)


def test_promote_names_the_member_slots_to_create_first() -> None:
    d = run(make_obs(cluster(leader="n0"), replica()))
    assert A.Promote(slots=("n1", "n2")) in d.actions
    off = run(make_obs(cluster(leader="n0"), replica()), STARTED, settings(use_slots=False))
    assert A.Promote() in off.actions
