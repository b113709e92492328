"""decide() case by case: one observation in, the expected actions and sentence out."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import STATE_START_FAILED, STATE_STARTING, Divergence
from qhb_patroni.core.observation import Decision, Memory
from qhb_patroni.core.slots import SlotSpec, slot_name_for
from qhb_patroni.messages import render

from .builders import (
    OTHER_SYSID,
    STARTED,
    SYSID,
    cluster,
    empty,
    hostport,
    make_obs,
    member,
    peer,
    primary,
    replica,
    settings,
    stopped,
    task,
)

S = settings()


def run(obs, memory=STARTED, s=S) -> Decision:  # type: ignore[no-untyped-def]
    return decide(obs, memory, s)


def kinds(d: Decision) -> list:  # type: ignore[type-arg]
    return [type(a).__name__ for a in d.actions]


# ---- F: DCS unreadable --------------------------------------------------------
def test_dcs_down_primary_demotes_offline() -> None:
    d = run(make_obs(None, primary()))
    assert d.actions == (A.Demote("offline"),)
    assert render(d.reason) == "demoting self because DCS is not accessible and I was a leader"


def test_dcs_down_replica_waits() -> None:
    d = run(make_obs(None, replica(following=hostport("n1"))))
    assert d.actions == ()
    assert render(d.reason) == "DCS is not accessible"


# ---- T: background task running --------------------------------------------------
def test_task_running_holder_renews() -> None:
    d = run(make_obs(cluster(leader="n0"), replica(), t=task("Promote", "promote")))
    assert d.actions == (A.RenewLock(version=7, last_lsn=None),)
    assert render(d.reason) == "updated leader lock during promote"


def test_task_running_primary_without_lock_demotes() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, primary(), t=task("Restart", "restart")))
    assert kinds(d) == ["Demote"]
    assert d.actions[0].mode == "immediate-nolock" and d.actions[0].leader.name == "n1"  # type: ignore[union-attr]
    assert render(d.reason) == "lost leader lock during restart"


def test_task_running_bootstrap_leaves_own_primary_alone() -> None:
    d = run(make_obs(cluster(initialize=""), primary(), t=task("Bootstrap", "bootstrap")),
            Memory(started=True, bootstrapping=True))
    assert d.actions == ()
    assert render(d.reason) == "bootstrap in progress"


def test_task_running_renew_failed_primary_demotes() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(), t=task("Restart", "restart"), failed=A.RenewLock(7, 100)))
    assert d.actions == (A.Demote("immediate-nolock", None),)


# ---- X/B: finished tasks, bootstrap ---------------------------------------------------
def test_bootstrap_failed_is_fatal_and_cancels_initialize() -> None:
    d = run(make_obs(cluster(initialize=""), empty(), t=task("Bootstrap", done=True, ok=False)),
            Memory(started=True, bootstrapping=True))
    assert d.actions == (A.CancelInitialize(), A.Fatal("Failed to bootstrap cluster"))
    assert not d.memory.bootstrapping


def test_bootstrap_done_writes_initialize_config_and_takes_lock() -> None:
    s = settings(bootstrap_dcs={"ttl": 20})
    c = cluster(initialize="")
    mem = Memory(started=True, bootstrapping=True)
    d = run(make_obs(c, primary(), t=task("Bootstrap", done=True, ok=True)), mem, s)
    assert d.actions == (A.WriteInitialize(SYSID, version=3), A.WriteConfig({"ttl": 20}), A.TakeLock())
    assert render(d.reason) == "initialized a new cluster"
    assert not d.memory.bootstrapping


def test_bootstrap_done_report_lost_but_primary_running_still_finishes() -> None:
    d = run(make_obs(cluster(initialize=""), primary()), Memory(started=True, bootstrapping=True))
    assert kinds(d) == ["WriteInitialize", "WriteConfig", "TakeLock"]


def test_clone_failed_waits_for_next_cycle() -> None:
    d = run(make_obs(cluster(leader="n1"), empty(),
                     t=task("Clone", "bootstrap from leader 'n1'", done=True, ok=False)))
    assert d.actions == ()
    assert render(d.reason) == "failed to bootstrap from leader 'n1'"


def test_rewind_failed_removes_data_when_configured() -> None:
    s = settings(use_pg_rewind=True, remove_data_directory_on_rewind_failure=True)
    d = run(make_obs(cluster(leader="n1"), stopped(), t=task("Rewind", "running pg_rewind from n1", done=True)),
            STARTED, s)
    assert d.actions == (A.RemoveDataDir(),)


def test_rewind_failed_otherwise_stays_stopped() -> None:
    s = settings(use_pg_rewind=True)
    d = run(make_obs(cluster(leader="n1"), stopped(), t=task("Rewind", done=True)), STARTED, s)
    assert d.actions == ()
    assert d.memory.rewind_state == "failed"
    assert render(d.reason).startswith("pg_rewind from n1 failed")


def test_promote_done_writes_history() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(slots=("n1", "n2")), t=task("Promote", done=True, ok=True)))
    assert d.actions == (A.RenewLock(version=7, last_lsn=100), A.WriteHistory())
    assert render(d.reason) == "no action. I am (n0), the leader with the lock"


# ---- D: empty data directory --------------------------------------------------------
def test_empty_holder_releases_lock() -> None:
    d = run(make_obs(cluster(leader="n0"), empty()))
    assert d.actions == (A.ReleaseLock(version=7),)
    assert render(d.reason) == "released leader key voluntarily as data dir empty and currently leader"


def test_empty_with_leader_clones_from_leader() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, empty()))
    assert kinds(d) == ["Clone"]
    clone = d.actions[0]
    assert isinstance(clone, A.Clone) and clone.source and clone.source.name == "n1" and clone.leader
    assert render(d.reason) == "trying to bootstrap from leader 'n1'"


def test_empty_clones_from_clonefrom_replica_first_by_name() -> None:
    ms = [member("n1", role="master"), member("n3", tags={"clonefrom": True}), member("n2", tags={"clonefrom": True}),
          member("n0")]
    d = run(make_obs(cluster(leader="n1", members=ms), empty()))
    clone = d.actions[0]
    assert isinstance(clone, A.Clone) and clone.source is not None and clone.source.name == "n2"
    assert clone.leader is not None and clone.leader.name == "n1"
    assert render(d.reason) == "trying to bootstrap from replica 'n2'"


def test_empty_no_initialize_races_to_bootstrap() -> None:
    d = run(make_obs(cluster(initialize=None), empty()))
    assert d.actions == (A.WriteInitialize("", create=True), A.Bootstrap())
    assert d.memory.bootstrapping
    assert render(d.reason) == "trying to bootstrap a new cluster"


def test_empty_lost_initialize_race() -> None:
    d = run(make_obs(cluster(initialize=""), empty(), failed=A.WriteInitialize("", create=True)),
            Memory(started=True, bootstrapping=True))
    assert d.actions == ()
    assert not d.memory.bootstrapping
    assert render(d.reason) == "failed to acquire initialize lock"


def test_empty_nofailover_waits_for_leader() -> None:
    d = run(make_obs(cluster(initialize=None), empty()), STARTED, settings(nofailover=True))
    assert d.actions == ()
    assert render(d.reason) == "waiting for leader to bootstrap"


def test_empty_initialize_in_progress_waits() -> None:
    d = run(make_obs(cluster(initialize=""), empty()))
    assert render(d.reason) == "waiting for leader to bootstrap"


def test_inaccessible_data_dir() -> None:
    local = replace(empty(), data_dir="inaccessible", data_dir_error="Permission denied")
    d = run(make_obs(cluster(leader="n1"), local))
    assert d.actions == ()
    assert render(d.reason) == "data directory is not accessible: Permission denied"


def test_failed_bootstrap_start_gives_initialize_back() -> None:
    d = run(make_obs(cluster(initialize=""), empty(), failed=A.Bootstrap()), Memory(started=True, bootstrapping=True))
    assert d.actions == (A.CancelInitialize(),)


# ---- I: identity ---------------------------------------------------------------------
def test_sysid_mismatch_is_fatal() -> None:
    d = run(make_obs(cluster(leader="n1"), stopped(sysid=OTHER_SYSID)))
    assert d.actions == (
        A.Fatal(f"system ID mismatch, node n0 belongs to a different cluster: {SYSID} != {OTHER_SYSID}"),
    )


def test_existing_data_without_initialize_adopts_it_first() -> None:
    d = run(make_obs(cluster(initialize=None), primary()), STARTED)
    assert d.actions[0] == A.WriteInitialize(SYSID, create=True)
    assert kinds(d)[1:] == ["AcquireLock"]


def test_invalid_sysid_stops_here() -> None:
    d = run(make_obs(cluster(leader="n1"), stopped(sysid="")))
    assert d.actions == ()
    assert "system ID is invalid" in render(d.reason)


# ---- S: stopped / starting ---------------------------------------------------------------
def test_stopped_holder_starts_readonly_and_renews() -> None:
    d = run(make_obs(cluster(leader="n0"), stopped()))
    assert d.actions == (A.RenewLock(version=7, last_lsn=None), A.StartReadOnlyLeader())
    assert render(d.reason) == "starting as readonly because i had the session lock"


def test_stopped_replica_without_rewind_config_starts_following_leader() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, stopped()))
    assert d.actions == (A.Follow(c.leader.member),)  # type: ignore[union-attr]
    assert render(d.reason) == "starting as a secondary"


def test_stopped_unlocked_starts_following_nobody() -> None:
    d = run(make_obs(cluster(), stopped()))
    assert d.actions == (A.Follow(None),)


def test_stopped_former_primary_checks_divergence_before_start() -> None:
    s = settings(use_pg_rewind=True)
    c = cluster(leader="n1")
    d = run(make_obs(c, stopped()), STARTED, s)
    assert kinds(d) == ["ProbeDivergence"]
    d2 = run(make_obs(c, stopped(), divergence=Divergence("n1", True)), d.memory, s)
    assert kinds(d2) == ["Rewind"]
    assert render(d2.reason) == "running pg_rewind from n1"
    d3 = run(make_obs(c, stopped(), divergence=Divergence("n1", False)), d.memory, s)
    assert kinds(d3) == ["Follow"]


def test_stopped_divergence_unknown_does_not_start() -> None:
    s = settings(use_pg_rewind=True)
    d = run(make_obs(cluster(leader="n1"), stopped(), divergence=Divergence("n1", None)), STARTED, s)
    assert d.actions == ()


def test_stopped_diverged_without_rewind_reinitializes_when_allowed() -> None:
    s = settings(remove_data_directory_on_diverged_timelines=True)
    local = replace(stopped(), rewind_possible=False)
    d = run(make_obs(cluster(leader="n1"), local, divergence=Divergence("n1", True)), STARTED, s)
    assert d.actions == (A.RemoveDataDir(),)
    assert render(d.reason) == "reinitializing due to diverged timelines"


def test_start_failed_holder_releases_lock() -> None:
    d = run(make_obs(cluster(leader="n0"), stopped(state=STATE_START_FAILED)))
    assert d.actions == (A.ReleaseLock(version=7),)


def test_starting_holder_renews_and_waits_then_times_out() -> None:
    local = replace(stopped(), state=STATE_STARTING)
    c = cluster(leader="n0")
    mem = Memory(started=True, crash_start_at=900.0)
    d = run(make_obs(c, local, now=1000.0), mem, settings(primary_start_timeout=300))
    assert d.actions == (A.RenewLock(version=7, last_lsn=None),)
    assert render(d.reason) == "PostgreSQL is still starting up, 200 seconds until timeout"
    d2 = run(make_obs(c, local, now=1300.0), mem, settings(primary_start_timeout=300))
    assert d2.actions == (A.ProbePeers(("n1", "n2")),)  # is a failover possible? ask first
    peers = {"n1": peer("n1", 100), "n2": None}
    d3 = run(make_obs(c, local, now=1300.0, peers=peers), mem, settings(primary_start_timeout=300))
    assert d3.actions == (A.Demote("immediate"), A.ReleaseLock())  # stop being writable, then release
    assert render(d3.reason) == "stopped PostgreSQL because of startup timeout"
    nobody = {"n1": None, "n2": peer("n2", 100, nofailover=True)}
    d4 = run(make_obs(c, local, now=1300.0, peers=nobody), mem, settings(primary_start_timeout=300))
    assert d4.actions == (A.RenewLock(version=7, last_lsn=None),)
    assert render(d4.reason) == "primary start has timed out, but continuing to wait because failover is not possible"


# ---- U: unlocked, the race -------------------------------------------------------------------
def test_unlocked_replica_probes_peers_first() -> None:
    d = run(make_obs(cluster(), replica()))
    assert d.actions == (A.ProbePeers(("n1", "n2")),)


def test_unlocked_healthiest_replica_acquires_then_promotes() -> None:
    peers = {"n1": peer("n1", 90), "n2": None}
    d = run(make_obs(cluster(), replica(lsn=100), peers=peers))
    assert d.actions == (A.AcquireLock(), A.Promote(slots=("n1", "n2")))
    assert render(d.reason) == "promoted self to leader by acquiring session lock"


def test_unlocked_tie_is_allowed() -> None:
    d = run(make_obs(cluster(), replica(lsn=100), peers={"n1": peer("n1", 100), "n2": peer("n2", 100)}))
    assert kinds(d) == ["AcquireLock", "Promote"]


def test_unlocked_running_primary_just_acquires() -> None:
    d = run(make_obs(cluster(), primary()))
    assert d.actions == (A.AcquireLock(),)
    assert render(d.reason) == "acquired session lock as a leader"


def test_unlocked_peer_ahead_means_follow_nobody() -> None:
    d = run(make_obs(cluster(), replica(lsn=100, following=hostport("n1")), peers={"n1": peer("n1", 150), "n2": None}))
    assert d.actions == (A.Follow(None),)
    assert render(d.reason) == "following a different leader because i am not the healthiest node"


def test_unlocked_not_healthiest_not_following_does_nothing() -> None:
    d = run(make_obs(cluster(), replica(lsn=100), peers={"n1": peer("n1", 150)}))
    assert d.actions == ()


def test_unlocked_primary_still_alive() -> None:
    d = run(make_obs(cluster(), replica(lsn=200), peers={"n1": peer("n1", 100, in_recovery=False)}))
    assert d.actions == ()
    assert "healthiest" in render(d.reason)


def test_unlocked_too_much_lag() -> None:
    c = cluster(last_lsn=10_000_000)
    d = run(make_obs(c, replica(lsn=100), peers={}))
    assert d.actions == ()


def test_unlocked_nofailover_never_races() -> None:
    d = run(make_obs(cluster(), replica(lsn=999), peers={}), STARTED, settings(nofailover=True))
    assert d.actions == ()
    assert render(d.reason) == "following a different leader because I am not allowed to promote"


def test_unlocked_nofailover_peers_are_ignored() -> None:
    d = run(make_obs(cluster(), replica(lsn=100), peers={"n1": peer("n1", 500, nofailover=True)}))
    assert kinds(d) == ["AcquireLock", "Promote"]


def test_unlocked_lost_race_replica_follows_new_leader() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, replica(following=None), failed=A.AcquireLock()))
    assert d.actions == (A.Follow(c.leader.member),)  # type: ignore[union-attr]
    assert render(d.reason) == "following new leader after trying and failing to obtain lock"


def test_unlocked_lost_race_primary_demotes() -> None:
    d = run(make_obs(cluster(leader="n1"), primary(), failed=A.AcquireLock()))
    assert kinds(d) == ["Demote"]
    assert render(d.reason) == "demoted self after trying and failing to obtain lock"


def test_unlocked_backoff_after_release() -> None:
    mem = Memory(started=True, release_backoff_until=NOW_PLUS)
    d = run(make_obs(cluster(), replica(lsn=999), peers={}), mem)
    assert d.actions == ()


NOW_PLUS = 2000.0


def test_acquire_clears_stale_failover_after_promote() -> None:
    from qhb_patroni.core.model import Failover

    c = cluster(failover=Failover(candidate="n9", version=4))
    d = run(make_obs(c, replica(lsn=100), peers={}))
    assert d.actions == (A.AcquireLock(), A.Promote(slots=("n1", "n2")), A.ClearFailover(version=4))


# ---- H: my lock -------------------------------------------------------------------------------
def test_leader_renews_with_lsn_and_syncs_slots() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(lsn=500)))
    assert d.actions == (A.RenewLock(version=7, last_lsn=500),
                         A.ManageSlots(create=(SlotSpec("n1"), SlotSpec("n2"))))
    assert render(d.reason) == "no action. I am (n0), the leader with the lock"


def test_leader_with_slots_in_place_only_renews() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(lsn=500, slots=("n2", "n1"))))
    assert d.actions == (A.RenewLock(version=7, last_lsn=500),)


def test_leader_without_slots_when_disabled() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(lsn=5)), STARTED, settings(use_slots=False))
    assert d.actions == (A.RenewLock(version=7, last_lsn=5),)


def test_leader_replica_promotes_after_renewing() -> None:
    d = run(make_obs(cluster(leader="n0"), replica()))
    assert d.actions == (A.RenewLock(version=7, last_lsn=None), A.Promote(slots=("n1", "n2")))
    assert render(d.reason) == "promoted self to leader because I had the session lock"


def test_leader_renew_failed_primary_demotes() -> None:
    d = run(make_obs(cluster(leader="n0"), primary(), failed=A.RenewLock(7, 100)))
    assert d.actions == (A.Demote("immediate-nolock", None),)
    assert render(d.reason) == "demoted self because failed to update leader lock in DCS"


def test_leader_renew_failed_replica_does_not_promote() -> None:
    d = run(make_obs(cluster(leader="n0"), replica(), failed=A.RenewLock(7, None)))
    assert d.actions == ()
    assert render(d.reason) == "not promoting because failed to update leader lock in DCS"


def test_leader_writes_missing_config() -> None:
    from qhb_patroni.core.model import ClusterView

    c: ClusterView = replace(cluster(leader="n0"), config=None)
    d = run(make_obs(c, primary(slots=("n1", "n2"))))
    assert d.actions == (A.RenewLock(version=7, last_lsn=100), A.WriteConfig({"ttl": 30, "loop_wait": 10}))


def test_leader_publishes_sysid_when_initialize_invalid() -> None:
    d = run(make_obs(cluster(leader="n0", initialize=""), primary(slots=("n1", "n2"))))
    assert d.actions[0] == A.WriteInitialize(SYSID, create=False, version=3)


# ---- L: someone else leads ---------------------------------------------------------------------
def test_other_leader_primary_demotes() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, primary()))
    assert d.actions == (A.Demote("immediate-nolock", c.leader.member),)  # type: ignore[union-attr]
    assert render(d.reason) == "demoting self because I do not have the lock and I was a leader"


def test_other_leader_replica_repoints() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, replica(following=hostport("n2"), slot=slot_name_for("n0"))))
    assert d.actions == (A.Follow(c.leader.member),)  # type: ignore[union-attr]
    assert render(d.reason) == "no action. I am (n0), a secondary, and following a leader (n1)"


def test_other_leader_replica_steady() -> None:
    d = run(make_obs(cluster(leader="n1"), replica(following=hostport("n1"), slot="n0")))
    assert d.actions == ()


def test_other_leader_slot_mismatch_refollows() -> None:
    d = run(make_obs(cluster(leader="n1"), replica(following=hostport("n1"), slot=None)))
    assert kinds(d) == ["Follow"]


def test_replicatefrom_target() -> None:
    ms = [member("n0", tags={"replicatefrom": "n2"}), member("n1", role="master"), member("n2")]
    d = run(make_obs(cluster(leader="n1", members=ms), replica(following=hostport("n1"), slot="n0")))
    assert d.actions == (A.Follow(ms[2]),)


def test_replica_after_demotion_checks_divergence_then_rewinds() -> None:
    s = settings(use_pg_rewind=True)
    c = cluster(leader="n1")
    mem = Memory(started=True, rewind_state="check")
    local = replica(following=hostport("n1"), slot="n0")
    d = run(make_obs(c, local), mem, s)
    assert kinds(d) == ["ProbeDivergence"]
    d2 = run(make_obs(c, local, divergence=Divergence("n1", True)), d.memory, s)
    assert kinds(d2) == ["Rewind"]
    d3 = run(make_obs(c, local, divergence=Divergence("n1", False)), d.memory, s)
    assert d3.actions == () and d3.memory.rewind_state == "idle"


def test_first_cycle_arms_divergence_check() -> None:
    s = settings(use_pg_rewind=True)
    d = run(make_obs(cluster(leader="n1"), replica(following=hostport("n1"), slot="n0")), Memory(), s)
    assert kinds(d) == ["ProbeDivergence"]
    assert d.memory.started


def test_a_new_leader_is_checked_again_once_followed() -> None:
    """Checked before re-pointing, the replica may still receive WAL from the old primary
    (its daemon stalled, its postmaster alive) and pass the fork point: once it follows
    the new leader it is checked again, and then rewound."""
    s = settings(use_pg_rewind=True)
    c = cluster(leader="n2")
    before = replica(following=hostport("n1"), slot="n0")  # still on the old primary
    d = run(make_obs(c, before), Memory(started=True), s)
    assert kinds(d) == ["ProbeDivergence"]
    d2 = run(make_obs(c, before, divergence=Divergence("n2", False)), d.memory, s)
    assert kinds(d2) == ["Follow"] and d2.memory.rewind_state == "check"
    after = replica(following=hostport("n2"), slot="n0")
    d3 = run(make_obs(c, after), d2.memory, s)
    assert kinds(d3) == ["ProbeDivergence"]
    d4 = run(make_obs(c, after, divergence=Divergence("n2", True)), d3.memory, s)
    assert kinds(d4) == ["Rewind"]


def test_repeated_failure_is_not_retried_in_the_same_cycle() -> None:
    c = cluster(leader="n1")
    d = run(make_obs(c, replica(following=None), failed=A.Follow(c.leader.member)))
    assert d.actions == ()
