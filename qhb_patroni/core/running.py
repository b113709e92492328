"""Phases of decide() for a node with a data directory (spec 5.3-5.5, 5.9, 5.10).

  S  server starting or stopped: start read-only as lock holder, otherwise
     check for a forked timeline *before* starting as a replica
  U  no leader: the race (is_healthiest -> AcquireLock + Promote)
  H  the lock is mine: renew, promote if needed, keep slots and /history
  L  someone else leads: demote if writable, check divergence, follow
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from . import actions as A
from . import roles
from .context import Ctx, arm_rewind_check
from .crash import failover_candidates, failover_possible
from .election import is_healthiest
from .local import CRASHED_CONTROLDATA_STATES, STATE_START_FAILED, STATE_STARTING
from .model import Member
from .observation import Decision, Memory
from .slots import SlotPlan, member_slots, primary_plan, published_positions, replica_plan, slot_name_for
from .standby import follows_remote
from .switchover import CLEAR, DEMOTE, PROBE, STREAM_WAIT, leader_step
from .syncrep import leader_sync_step, promote_sync_actions
from .timing import deadline_passed, seconds_until


def running_phases(ctx: Ctx, memory: Memory, promoted: bool) -> Decision:
    local = ctx.local
    if ctx.role == roles.UNKNOWN:
        return _unknown(ctx, memory)
    if ctx.cluster.paused:
        paused = _paused(ctx, memory)
        if paused is not None:
            return paused
    if not local.running:
        if local.state == STATE_STARTING:
            return _starting(ctx, memory)
        return _stopped(ctx, memory)
    if ctx.cluster.is_unlocked:
        return _unlocked(ctx, memory)
    if ctx.i_am_leader:
        return _mine(ctx, memory, promoted)
    return _theirs(ctx, memory)


def _unknown(ctx: Ctx, memory: Memory) -> Decision:
    """The server runs but did not answer the status query in time (stalled, overloaded,
    a lock): the lock holder renews on the role it last had and does nothing else, so a
    slow database never costs the lease (as 3.0.2, which falls back to its cached role).
    A primary that stays stalled keeps the lock; one that lost the lock meanwhile is
    fenced by the lease guard when its lease ends."""
    if ctx.i_am_leader and not ctx.failed(A.RenewLock):
        alert = "Failed to determine PostgreSQL state from the connection, falling back to cached role"
        return ctx.out(roles.PG_UNKNOWN_HOLDER, [_renew(ctx)], memory, alert=alert)
    return ctx.out(roles.PG_UNKNOWN, [], memory)


def _paused(ctx: Ctx, memory: Memory) -> Optional[Decision]:
    """Maintenance mode (5.13): the server is left as it is; only the lock and
    the replicas' upstream are looked after.  None = the normal phase applies."""
    local = ctx.local
    lead = ctx.leader
    release = [A.ReleaseLock(version=lead.version if lead else None)]
    if not local.running:
        if ctx.i_am_leader:
            return ctx.out(roles.PAUSED_NOT_RUNNING_HOLDER, release, memory)
        return ctx.out(roles.PAUSED_NOT_RUNNING, [], memory)
    if ctx.i_am_leader:
        if not local.is_primary and ctx.settings.standby is None:
            return ctx.out(roles.PAUSED_NOT_PRIMARY_HOLDER, release, memory)
        if ctx.failed(A.RenewLock):
            return ctx.out(roles.PAUSED_RENEW_FAILED, [], memory)
        return None  # renew as usual (a manual failover still applies to a primary)
    if local.is_primary:
        if ctx.cluster.is_unlocked and not ctx.failed(A.AcquireLock):
            return None  # a running primary takes the free lock even in pause
        return ctx.out(roles.PAUSED_NO_LOCK, [], memory)
    if ctx.other_leader is None:
        fo = ctx.cluster.failover
        if ctx.cluster.is_unlocked and fo is not None and fo.candidate == ctx.me:
            return None  # the named failover candidate may take the free lock even in pause (5.13)
        return ctx.out(roles.PAUSED_IDLE, [], memory)
    target = follow_target(ctx)
    follows = _follows(ctx, target)
    acts: List[A.Action] = [] if follows else [A.Follow(target)]
    if follows and local.is_replica:
        # Slots are kept and advanced in pause too, but nothing is dropped and the
        # server is not restarted to copy a slot.
        plan = replica_plan(ctx.cluster, ctx.me, local, ctx.settings.use_slots, ctx.settings.nofailover, True)
        acts.extend(slot_actions(plan))
    return ctx.out(roles.LOCKED_BY_OTHER, acts, memory, leader=ctx.other_leader.name)


def _renew(ctx: Ctx) -> A.RenewLock:
    lead = ctx.leader
    primary = ctx.local.is_primary
    return A.RenewLock(
        version=lead.version if lead is not None else None,
        last_lsn=ctx.local.lsn if primary else None,
        slots=published_positions(ctx.cluster, ctx.local) if primary else None,
    )


def _promote(ctx: Ctx) -> A.Promote:
    return A.Promote(slots=member_slots(ctx.cluster, ctx.me) if ctx.settings.use_slots else ())


def _failover_check(ctx: Ctx) -> Optional[bool]:
    """Could another member take over (core.crash)? None: its status must be asked first."""
    names = failover_candidates(ctx.cluster, ctx.settings)
    if not names:
        return False
    if ctx.obs.peers is None:
        return None
    return failover_possible(ctx.cluster, ctx.settings, ctx.obs.peers)


def follow_target(ctx: Ctx) -> Optional[Member]:
    """The member to stream from: my replicatefrom member when it exists,
    else the leader; never myself."""
    me = ctx.cluster.member(ctx.me)
    upstream = me.replicatefrom if me is not None else None
    if upstream and upstream != ctx.me:
        m = ctx.cluster.member(upstream)
        if m is not None and ctx.other_leader is not None:
            return m
    return ctx.leader_member() if ctx.other_leader is not None else None


def _follows(ctx: Ctx, target: Optional[Member]) -> bool:
    """Do the recovery settings in effect already point at `target`?"""
    local = ctx.local
    if target is None or target.host_port is None:
        return local.following is None
    host, port = target.host_port
    if local.following != f"{host}:{port}":
        return False
    wanted_slot = slot_name_for(ctx.me) if ctx.settings.use_slots else None
    return local.slot_name == wanted_slot


# ---- S ------------------------------------------------------------------------
def _starting(ctx: Ctx, memory: Memory) -> Decision:
    if not ctx.i_am_leader:
        event = roles.STARTING_FOLLOWER if ctx.other_leader else roles.STARTING_LEADERLESS
        return ctx.out(event, [], memory, leader=ctx.leader.name if ctx.leader else None)
    if ctx.failed(A.RenewLock):
        memory = replace(memory, crash_start_at=None)
        return ctx.out(roles.START_LOCK_LOST, [A.Demote("immediate-nolock", None)], memory)
    now, timeout = ctx.obs.now, ctx.settings.primary_start_timeout
    if memory.crash_start_at is None:
        memory = replace(memory, crash_start_at=now)
    if deadline_passed(memory.crash_start_at, timeout, now):
        possible = _failover_check(ctx)
        if possible is None:
            names = failover_candidates(ctx.cluster, ctx.settings)
            return ctx.out(roles.PROBE_PEERS, [A.ProbePeers(names)], memory)
        if possible:
            memory = replace(memory, crash_start_at=None)
            return ctx.out(roles.START_TIMEOUT_DEMOTE, [A.Demote("immediate"), A.ReleaseLock()], memory)
        return ctx.out(roles.START_TIMEOUT_WAIT, [_renew(ctx)], memory)
    left = seconds_until(memory.crash_start_at, timeout, now)
    return ctx.out(roles.STILL_STARTING, [_renew(ctx)], memory, seconds=left)


def _stopped(ctx: Ctx, memory: Memory) -> Decision:
    if ctx.i_am_leader and not ctx.failed(A.RenewLock):
        if ctx.local.state == STATE_START_FAILED:
            memory = replace(memory, crash_start_at=None)
            lead = ctx.leader
            return ctx.out(roles.START_FAILED_HOLDER, [A.ReleaseLock(version=lead.version if lead else None)], memory)
        if ctx.settings.primary_start_timeout == 0:  # fail over rather than restart, when possible
            possible = _failover_check(ctx)
            if possible is None:
                names = failover_candidates(ctx.cluster, ctx.settings)
                return ctx.out(roles.PROBE_PEERS, [A.ProbePeers(names)], memory)
            if possible:
                # Give the key up without starting the server; keep out of the race for a
                # ttl so that a replica, not this crashed primary, takes over.
                lead = ctx.leader
                memory = replace(memory, crash_start_at=None, release_backoff_until=ctx.obs.now + ctx.settings.ttl)
                release = A.ReleaseLock(version=lead.version if lead else None, demoted=True)
                return ctx.out(roles.CRASH_FAILOVER, [release], memory, note="Primary crashed. Failing over.")
        memory = replace(memory, crash_start_at=ctx.obs.now, rewind_state="idle")
        if ctx.settings.standby is not None:
            return ctx.out(roles.STANDBY_START_LEADER, [_renew(ctx), A.Follow(ctx.settings.standby.remote)], memory)
        return ctx.out(roles.START_READONLY_LEADER, [_renew(ctx), A.StartReadOnlyLeader()], memory)
    if ctx.other_leader is None:
        if ctx.settings.standby is not None:
            return ctx.out(roles.STANDBY_FOLLOW_REMOTE, [A.Follow(ctx.settings.standby.remote)], memory)
        return ctx.out(roles.START_SECONDARY, [A.Follow(None)], memory)
    # A stopped node may be a former primary whose timeline forked: it must not
    # stream from the new leader before that has been checked.
    if ctx.rewind_configured:
        if memory.rewind_state == "failed":
            return ctx.out(roles.REWIND_FAILED_WAIT, [], memory, leader=ctx.other_leader.name)
        if memory.rewind_state == "crash_failed":
            if ctx.local.controldata_state in CRASHED_CONTROLDATA_STATES or ctx.local.postmaster_alive:
                return ctx.out(roles.CRASH_RECOVERY_FAILED, [], memory, leader=ctx.other_leader.name)
            # The cluster was shut down cleanly since (by hand, or a shutdown that was still
            # under way when the recovery tripped): no recovery needed; check the timeline.
            memory = replace(memory, rewind_state="check")
        diverged = _divergence(ctx, memory, stopped=True)
        if diverged is not None:
            return diverged
        memory = replace(memory, rewind_state="idle", crash_attempts=0, crash_retry_at=None)
    return ctx.out(roles.START_SECONDARY, [A.Follow(follow_target(ctx))], memory)


def _divergence(ctx: Ctx, memory: Memory, stopped: bool) -> Optional[Decision]:
    """Probe / rewind / reinit against the leader; None = fine to follow."""
    leader = ctx.leader_member()
    assert leader is not None
    div = ctx.obs.divergence
    if stopped and ctx.local.controldata_state in CRASHED_CONTROLDATA_STATES:
        if ctx.local.postmaster_alive:
            # It does not answer but has not gone away: a shutdown still under way (the
            # lease guard's fast shutdown), a stop that timed out, a restart after a
            # backend crash, a hung server.  (One the shell last saw running reads as
            # running with an unknown role instead, PG_UNKNOWN.)  Stop it: a fast stop
            # waits for a shutdown already under way and kills a hung server; only then
            # does the control file tell whether it crashed.
            if ctx.failed(A.StopServer):
                return ctx.out(roles.CRASH_CHECK_STOP_FAILED, [], memory, leader=leader.name)
            return ctx.out(roles.CRASH_CHECK_STOP, [A.StopServer("fast")], memory, leader=leader.name)
        retry_at = memory.crash_retry_at
        if retry_at is not None and ctx.obs.now < retry_at:
            return ctx.out(roles.CRASH_RECOVERY_RETRY_WAIT, [], memory, leader=leader.name,
                           seconds=int(retry_at - ctx.obs.now + 0.999))
        # Only a cleanly shut down cluster says where its WAL ends: recover it first, in
        # the background (it may replay a lot of WAL), then check.
        memory = replace(memory, crash_retry_at=None)
        return ctx.out(roles.CRASH_RECOVERY_START, [A.CrashRecovery()], memory, leader=leader.name)
    if div is None or div.leader != leader.name:
        return ctx.out(roles.PROBE_DIVERGENCE, [A.ProbeDivergence(leader)], memory, leader=leader.name)
    if div.needed is None:
        if stopped:
            return ctx.out(roles.DIVERGENCE_UNKNOWN, [], replace(memory, rewind_state="check"), leader=leader.name)
        return None  # a running replica keeps streaming; the check is repeated next cycle
    if not div.needed:
        return None
    s = ctx.settings
    if s.use_pg_rewind and ctx.local.rewind_possible:
        memory = replace(memory, rewind_state="needed")
        return ctx.out(roles.REWIND_START, [A.Rewind(leader)], memory, leader=leader.name)
    if s.remove_data_directory_on_diverged_timelines:
        memory = replace(memory, rewind_state="idle")
        return ctx.out(roles.REINIT_DIVERGED, [A.RemoveDataDir()], memory, leader=leader.name)
    if stopped:
        return ctx.out(roles.DIVERGED_STAY, [], memory, leader=leader.name)
    return None


# ---- U ------------------------------------------------------------------------
def _unlocked(ctx: Ctx, memory: Memory) -> Decision:
    local = ctx.local
    if ctx.failed(A.AcquireLock):
        memory = arm_rewind_check(ctx, memory)
        if local.is_primary:
            return ctx.out(roles.RACE_LOST, [A.Demote("immediate-nolock", None)], memory)
        return ctx.out(roles.RACE_LOST, _follow_nobody(ctx), memory)
    verdict = is_healthiest(ctx.obs, memory, ctx.settings)
    if verdict.probe is not None:
        return ctx.out(roles.PROBE_PEERS, [A.ProbePeers(verdict.probe)], memory)
    if verdict.healthiest and ctx.settings.standby is not None:
        # Standby cluster: the new lock holder follows the remote primary, never promotes.
        memory = replace(memory, rewind_state="idle")
        taken: List[A.Action] = [A.AcquireLock(), *_follow_remote(ctx)]
        if ctx.cluster.failover is not None:
            taken.append(A.ClearFailover(version=ctx.cluster.failover.version))
        return ctx.out(roles.STANDBY_LOCK_ACQUIRED, taken, memory)
    if verdict.healthiest:
        memory = replace(memory, rewind_state="idle")
        acts: List[A.Action] = [A.AcquireLock()]
        if not local.is_primary:
            acts.extend(promote_sync_actions(ctx.cluster, ctx.settings))
            acts.append(_promote(ctx))
        failover = ctx.cluster.failover
        if failover is not None:
            acts.append(A.ClearFailover(version=failover.version))
        return ctx.out(roles.LOCK_ACQUIRED, acts, memory)
    memory = arm_rewind_check(ctx, memory)
    event = roles.NOT_ALLOWED if ctx.settings.nofailover else roles.NOT_HEALTHIEST
    if local.is_primary:
        return ctx.out(event, [A.Demote("immediate-nolock", None)], memory, why=verdict.why)
    # While nobody leads, a replica follows nobody (Patroni drops primary_conninfo); in a
    # standby cluster, the remote primary.
    return ctx.out(event, _follow_nobody(ctx), memory, why=verdict.why)


# ---- H ------------------------------------------------------------------------
def _mine(ctx: Ctx, memory: Memory, promoted: bool) -> Decision:
    local, cluster = ctx.local, ctx.cluster
    memory = replace(memory, rewind_state="idle", crash_start_at=None)
    if ctx.failed(A.RenewLock):
        if local.is_primary:
            memory = arm_rewind_check(ctx, memory)
            return ctx.out(roles.RENEW_FAILED, [A.Demote("immediate-nolock", None)], memory)
        return ctx.out(roles.RENEW_FAILED, [], memory)
    acts: List[A.Action] = [_renew(ctx)]
    if cluster.config is None and ctx.settings.bootstrap_dcs:
        acts.append(A.WriteConfig(dict(ctx.settings.bootstrap_dcs)))
    if ctx.settings.standby is not None:
        return _standby_leader(ctx, memory, acts)
    if not local.is_primary:
        if ctx.failed(A.WriteSync):
            return ctx.out(roles.SYNC_POSTPONED, acts, memory)
        acts.extend(promote_sync_actions(cluster, ctx.settings))
        acts.append(_promote(ctx))
        return ctx.out(roles.LOCK_HELD, acts, memory)
    fo_version = cluster.failover.version if cluster.failover is not None else None
    since = memory.stream_wait_since
    if since is not None and since[0] != fo_version:
        since = None  # another request
    step = leader_step(ctx.obs, ctx.settings, ctx.obs.now - since[1] if since is not None else 0.0)
    if step.what == STREAM_WAIT:
        memory = replace(memory, stream_wait_since=since or (fo_version, ctx.obs.now))
    elif step.what != PROBE and memory.stream_wait_since is not None:
        memory = replace(memory, stream_wait_since=None)
    if step.what == PROBE:
        return ctx.out(roles.PROBE_PEERS, [A.ProbePeers(step.names)], memory)
    if step.what == DEMOTE:
        memory = arm_rewind_check(ctx, memory)
        hand_over: List[A.Action] = [A.StopServer("fast", checkpoint=True), A.ReleaseLock(stopped_position=True)]
        return ctx.out(roles.MANUAL_FAILOVER, acts + hand_over + [A.Demote("graceful", None)], memory)
    sync = leader_sync_step(cluster, ctx.settings, ctx.obs.replication)
    if sync.probe is not None:
        return ctx.out(roles.PROBE_REPLICATION, [sync.probe], memory)
    if step.what == CLEAR:
        acts.append(A.ClearFailover(version=cluster.failover.version if cluster.failover else None))
    acts.extend(sync.actions)
    args = {"warning": step.warning} if step.warning else {}
    acts.extend(slot_actions(primary_plan(cluster, ctx.me, local, ctx.settings.use_slots, cluster.paused)))
    if promoted:
        acts.append(A.WriteHistory(keep=ctx.settings.max_timelines_history))
    return ctx.out(roles.LOCK_HELD, acts, memory, **args)


# ---- L ------------------------------------------------------------------------
def _theirs(ctx: Ctx, memory: Memory) -> Decision:
    local = ctx.local
    leader = ctx.leader_member()
    assert leader is not None
    race_lost = ctx.failed(A.AcquireLock)
    event = roles.RACE_LOST if race_lost else roles.LOCKED_BY_OTHER
    if local.is_primary:
        memory = arm_rewind_check(ctx, memory)
        return ctx.out(event, [A.Demote("immediate-nolock", leader)], memory, leader=leader.name)
    target = follow_target(ctx)
    follows = _follows(ctx, target)
    if race_lost:
        memory = arm_rewind_check(ctx, memory)
    if ctx.rewind_configured and (memory.rewind_state == "check" or not follows):
        diverged = _divergence(ctx, memory, stopped=False)
        if diverged is not None:
            return diverged
        div = ctx.obs.divergence
        if div is not None and div.needed is not None:
            memory = replace(memory, rewind_state="idle")
    acts: List[A.Action] = [] if follows else [A.Follow(target)]
    if not follows:
        # Check again once it follows: until then it may still receive WAL from the old
        # primary (a stalled daemon's postmaster still streams) and pass the fork point
        # after the check above said no rewind was needed.
        memory = arm_rewind_check(ctx, memory)
    if ctx.settings.standby is not None and event == roles.LOCKED_BY_OTHER:
        event = roles.STANDBY_FOLLOWING
    if follows and local.is_replica:
        plan = replica_plan(ctx.cluster, ctx.me, local, ctx.settings.use_slots, ctx.settings.nofailover,
                            ctx.cluster.paused)
        acts.extend(slot_actions(plan, leader))
        if plan.copy and not ctx.failed(A.CopyLogicalSlots):
            acts.append(A.CopyLogicalSlots(plan.copy, leader))
            return ctx.out(roles.COPY_LOGICAL_SLOTS, acts, memory, slots=list(plan.copy))
    nudge, memory = receiver_nudge(ctx, memory, follows)
    acts.extend(nudge)
    return ctx.out(event, acts, memory, leader=leader.name)


# A standby that follows the leader but has no WAL receiver is woken to try streaming
# again every RECEIVER_POLL seconds, for RECEIVER_NUDGE_FOR seconds (at least two of the
# leader's cycles: it creates a new member's slot at its next one) from when it was first
# seen without one; after that the server's own wal_retrieve_retry_interval paces it.
# The usual case: a member rejoining after a failover starts before the new primary's
# next cycle has created its slot, and would otherwise wait 5 s to try again.
RECEIVER_POLL = 0.5
RECEIVER_NUDGE_FOR = 10.0


def receiver_nudge(ctx: Ctx, memory: Memory, follows: bool) -> Tuple[List[A.Action], Memory]:
    local = ctx.local
    now = ctx.obs.now
    if not (follows and local.is_replica and local.following is not None and local.wal_receiver is False):
        if memory.receiver_missing_since is not None:
            memory = replace(memory, receiver_missing_since=None)
        return [], memory
    since = memory.receiver_missing_since
    if since is None:
        memory = replace(memory, receiver_missing_since=now)
        since = now
    if now - since >= max(RECEIVER_NUDGE_FOR, 2 * ctx.settings.loop_wait):
        return [], memory
    return [A.WakeWalReceiver(), A.Recheck(RECEIVER_POLL)], memory


def slot_actions(plan: SlotPlan, leader: Optional[Member] = None) -> List[A.Action]:
    check = leader if plan.check else None
    if not plan.changes and not plan.problems and check is None:
        return []
    return [A.ManageSlots(drop=plan.drop, create=plan.create, advance=plan.advance, feedback=plan.feedback,
                          problems=plan.problems, readiness_leader=check)]


# ---- standby cluster (core.standby) ----------------------------------------------
def _follow_remote(ctx: Ctx) -> List[A.Action]:
    """Follow the standby cluster's remote primary unless already doing so."""
    sc = ctx.settings.standby
    assert sc is not None
    local = ctx.local
    if local.is_replica and follows_remote(local.following, sc) and local.slot_name == sc.primary_slot_name:
        return []
    return [A.Follow(sc.remote)]


def _follow_nobody(ctx: Ctx) -> List[A.Action]:
    """While nobody holds the lock: follow nobody, or the remote in a standby cluster."""
    if ctx.settings.standby is not None:
        return _follow_remote(ctx)
    return [] if ctx.local.following is None else [A.Follow(None)]


def _standby_leader(ctx: Ctx, memory: Memory, acts: List[A.Action]) -> Decision:
    """The lock holder of a standby cluster: follow the remote, keep the members'
    physical slots, never promote."""
    if ctx.cluster.paused:
        return ctx.out(roles.STANDBY_LEADER_HOLD if ctx.local.is_replica else roles.LOCK_HELD, acts, memory)
    follow = _follow_remote(ctx)
    if follow:
        return ctx.out(roles.STANDBY_LEADER_REFOLLOW, acts + follow, memory)
    plan = primary_plan(ctx.cluster, ctx.me, ctx.local, ctx.settings.use_slots, False, physical_only=True)
    return ctx.out(roles.STANDBY_LEADER_HOLD, acts + slot_actions(plan), memory)
