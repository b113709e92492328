"""decide(observation, memory, settings) -> Decision: the HA brain, pure.

Ordered phases (spec 5.2, simplified; each returns a Decision or passes on):

  C  the last HA cycles failed       -> a primary demotes before its lease ends
  Q  the daemon is stopping (SIGTERM) -> hand over, stop, release, exit (shutdown.py)
  F  the DCS could not be read        -> a primary demotes, others wait
  T  a background task runs           -> renew the lock / demote if it was lost
  X  a background task just finished  -> bootstrap failure is fatal, ...
  B  our bootstrap just finished      -> write /initialize, /config, take the lock
  D  empty or inaccessible data dir   -> release lock, clone, bootstrap or wait
  I  identity of the data dir         -> sysid checks, adopt an existing cluster
  S  server starting / stopped        -> (see running.py)
  U/H/L  unlocked / mine / another's  -> (see running.py)

No I/O, no clock, no logging: everything comes from the observation and goes
out as actions plus a Reason.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from . import actions as A
from . import roles
from .cancel import cancels_for_forced_reinit
from .context import Ctx, arm_rewind_check
from .crash import crash_recovery_finished
from .failsafe import dcs_down, remember, with_failsafe_key
from .fencing import refusal, watchdog_unusable, with_watchdog
from .local import DATA_EMPTY, DATA_INACCESSIBLE, DATA_PRESENT, PRE_PROMOTE_FAILED_ERROR, TaskKind
from .methods import clone_member
from .model import Member
from .observation import Decision, Memory, Observation, Settings
from .operator import operator_actions
from .running import running_phases
from .shutdown import HAND_OVER_NOTES, end_hand_over, hand_over, planned_stop
from .slots import published_positions


def decide(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    ctx = Ctx.of(obs, settings)
    memory = remember(ctx, _first_cycle(ctx, memory))
    decision = end_hand_over(ctx, refusal(ctx, memory) or _decide(ctx, memory))
    decision = with_failsafe_key(ctx, _without_repeated_failure(obs, decision))
    return with_watchdog(ctx, decision)


def _first_cycle(ctx: Ctx, memory: Memory) -> Memory:
    """On the first decision after start, check for a forked timeline before
    streaming (the node may have been a primary before the daemon restarted)."""
    if memory.started:
        return memory
    memory = replace(memory, started=True)
    return arm_rewind_check(ctx, memory)


def _without_repeated_failure(obs: Observation, decision: Decision) -> Decision:
    """Never retry, within one cycle, the very action that just failed: cut the
    list there (the next cycle starts from a fresh observation)."""
    if obs.failed is None:
        return decision
    acts = decision.actions
    for i, action in enumerate(acts):
        if action == obs.failed.action:
            return replace(decision, actions=acts[:i])
    return decision


def _decide(ctx: Ctx, memory: Memory) -> Decision:
    if ctx.obs.failed_cycles:
        return _cycles_failing(ctx, memory)
    if ctx.obs.stopping:
        return planned_stop(ctx, memory)
    if ctx.obs.cluster is None:
        return dcs_down(ctx, memory) or _dcs_down(ctx, memory)
    if not ctx.obs.commands or (ctx.obs.task is not None and ctx.obs.task.done):
        return _decide_ha(ctx, memory)  # a finished task is dealt with first; commands wait a cycle
    if not ctx.failed(A.CancelTask) and cancels_for_forced_reinit(ctx.obs, ctx.settings):
        assert ctx.obs.task is not None
        return ctx.out(roles.CANCEL_FOR_REINIT, [A.CancelTask()], memory, action=ctx.obs.task.name)
    rejects, start = operator_actions(ctx.obs, ctx.settings)
    if start is not None and not ctx.failed(A.RenewLock) and not ctx.failed(type(start)):
        acts: List[A.Action] = [_renew(ctx)] if ctx.i_am_leader else []
        wait, memory, ended = hand_over(ctx, memory)  # a synchronous standby hands its duty over first
        if wait is not None:
            return ctx.out(roles.SYNC_HAND_OVER, acts + rejects + wait, memory)
        acts += rejects + [start]
        notes = HAND_OVER_NOTES.get(ended, {})
        if isinstance(start, A.Reinitialize):
            return ctx.out(roles.OPERATOR_REINITIALIZE, acts, memory, action="reinitialize", **notes)
        return ctx.out(roles.OPERATOR_RESTART, acts, memory, **notes)
    decision = _decide_ha(ctx, memory)
    if rejects:
        decision = replace(decision, actions=tuple(rejects) + decision.actions)
    return decision


def _decide_ha(ctx: Ctx, memory: Memory) -> Decision:
    task = ctx.obs.task
    if task is not None and not task.done:
        return _task_running(ctx, memory)
    finished, memory, promoted = _task_finished(ctx, memory)
    if finished is not None:
        return finished
    for phase in (_bootstrap_done, _data_dir):
        decision, memory = phase(ctx, memory)
        if decision is not None:
            return decision
    prefix, decision = _identity(ctx, memory)
    if decision is not None:
        return decision
    decision = running_phases(ctx, memory, promoted)
    if prefix:
        decision = replace(decision, actions=prefix + decision.actions)
    return decision


# ---- F ------------------------------------------------------------------------
def _dcs_down(ctx: Ctx, memory: Memory) -> Decision:
    if ctx.local.is_primary:
        memory = arm_rewind_check(ctx, memory)
        return ctx.out(roles.DCS_UNREACHABLE, [A.Demote("offline")], memory)
    return ctx.out(roles.DCS_UNREACHABLE, [], memory)


# ---- C ------------------------------------------------------------------------
def _cycles_failing(ctx: Ctx, memory: Memory) -> Decision:
    """The last cycles raised: the lock is not being renewed.  A primary keeps serving
    while its local lease lasts past the next cycle, then demotes (offline: it cannot
    trust what it reads); everyone else waits for a cycle that completes."""
    obs, failed = ctx.obs, ctx.obs.failed_cycles
    if ctx.local.is_primary and (
        obs.lock_written_at is None or obs.now + ctx.settings.loop_wait >= obs.lock_written_at + ctx.settings.ttl
    ):
        memory = arm_rewind_check(ctx, memory)
        return ctx.out(roles.CYCLES_FAILING_DEMOTE, [A.Demote("offline")], memory, failed=failed)
    return ctx.out(roles.CYCLES_FAILING, [], memory, failed=failed)


# ---- T ------------------------------------------------------------------------
def _renew(ctx: Ctx) -> A.RenewLock:
    lead = ctx.leader
    primary = ctx.local.is_primary
    return A.RenewLock(
        version=lead.version if lead is not None else None,
        last_lsn=ctx.local.lsn if primary else None,
        slots=published_positions(ctx.cluster, ctx.local) if primary else None,
    )


def _task_running(ctx: Ctx, memory: Memory) -> Decision:
    task = ctx.obs.task
    assert task is not None
    name = task.name
    if ctx.i_am_leader and not ctx.failed(A.RenewLock):
        return ctx.out(roles.TASK_LOCK_RENEWED, [_renew(ctx)], memory, action=name)
    # Not the holder (or the renewal just failed).  Our own bootstrap runs a
    # primary before the lock exists, and a promote is stopped by the next
    # cycle once it completes, so those two are left alone.
    paused = ctx.obs.cluster is not None and ctx.obs.cluster.paused
    if ctx.local.is_primary and task.kind not in (TaskKind.PROMOTE, TaskKind.BOOTSTRAP) and not paused:
        memory = arm_rewind_check(ctx, memory)
        demote = A.Demote("immediate-nolock", ctx.leader_member() if not ctx.i_am_leader else None)
        return ctx.out(roles.TASK_LOCK_LOST, [demote], memory, action=name)
    return ctx.out(roles.TASK_RUNNING, [], memory, action=name)


# ---- X ------------------------------------------------------------------------
def _task_finished(ctx: Ctx, memory: Memory) -> Tuple[Optional[Decision], Memory, bool]:
    """Returns (final decision or None, memory, 'a promote just completed')."""
    task = ctx.obs.task
    if task is None or not task.done:
        return None, memory, False
    if task.kind == TaskKind.CLONE and not task.ok and memory.bootstrapping:
        # The standby leader's first clone from the remote failed: free /initialize, retry.
        memory = replace(memory, bootstrapping=False)
        return ctx.out(roles.STANDBY_BOOTSTRAP_FAILED, [A.CancelInitialize()], memory,
                       error=task.error or "unknown error"), memory, False
    if task.kind == TaskKind.BOOTSTRAP and not task.ok:
        memory = replace(memory, bootstrapping=False)
        acts: List[A.Action] = [A.CancelInitialize(), A.Fatal("Failed to bootstrap cluster")]
        return ctx.out(roles.BOOTSTRAP_FAILED, acts, memory, error=task.error), memory, False
    if task.kind == TaskKind.CLONE and not task.ok and ctx.local.data_dir != DATA_PRESENT:
        return ctx.out(roles.CLONE_FAILED, [], memory, action=task.name, error=task.error), memory, False
    if task.kind in (TaskKind.CLONE, TaskKind.REINITIALIZE) and task.ok:
        # a fresh copy: no earlier failure applies
        memory = replace(memory, rewind_state="idle", crash_attempts=0, crash_retry_at=None)
    if task.kind == TaskKind.CRASH_RECOVERY:
        return None, crash_recovery_finished(task, memory, ctx.obs.now, ctx.settings), False
    if task.kind == TaskKind.REWIND:
        if task.ok:
            return None, replace(memory, rewind_state="idle"), False
        s = ctx.settings
        removable = s.remove_data_directory_on_rewind_failure or s.remove_data_directory_on_diverged_timelines
        if removable and not ctx.local.is_primary:
            memory = replace(memory, rewind_state="idle")
            return ctx.out(roles.REWIND_FAILED_REMOVE, [A.RemoveDataDir()], memory), memory, False
        return None, replace(memory, rewind_state="failed"), False
    if task.kind == TaskKind.PROMOTE and not task.ok and (task.error or "").endswith(PRE_PROMOTE_FAILED_ERROR) \
            and ctx.i_am_leader and not ctx.local.is_primary:
        # The fencing command refused: give the lock up and stay out of the race for a ttl (3.0.2).
        lead = ctx.leader
        memory = replace(memory, release_backoff_until=ctx.obs.now + ctx.settings.ttl)
        release = A.ReleaseLock(version=lead.version if lead is not None else None)
        return ctx.out(roles.PRE_PROMOTE_FAILED, [release], memory), memory, False
    return None, memory, task.kind == TaskKind.PROMOTE and task.ok


# ---- B ------------------------------------------------------------------------
def _bootstrap_done(ctx: Ctx, memory: Memory) -> Tuple[Optional[Decision], Memory]:
    if not memory.bootstrapping:
        return None, memory
    task = ctx.obs.task
    done_ok = task is not None and task.kind in (TaskKind.BOOTSTRAP, TaskKind.CLONE) and task.done and task.ok
    # The "done" report can be lost to a DCS outage; a running primary (standby leader)
    # that we were bootstrapping is proof enough.
    running = ctx.local.is_primary if ctx.settings.standby is None else ctx.local.is_replica
    if done_ok or (task is None and running and ctx.obs.failed is None):
        memory = replace(memory, bootstrapping=False)
        cluster = ctx.cluster
        acts: List[A.Action] = [
            A.WriteInitialize(ctx.local.sysid or "", version=cluster.initialize_version),
            A.WriteConfig(dict(ctx.settings.bootstrap_dcs)),
            A.TakeLock(),
        ]
        # A standby cluster's first member cloned the remote: it is a replica (standby leader).
        event = roles.BOOTSTRAP_DONE if ctx.settings.standby is None else roles.STANDBY_BOOTSTRAP_DONE
        return ctx.out(event, acts, memory), memory
    if ctx.failed(A.Bootstrap):
        # We hold the initialize key but could not start the task: give the key back.
        memory = replace(memory, bootstrapping=False)
        return ctx.out(roles.BOOTSTRAP_START_FAILED, [A.CancelInitialize()], memory, action="bootstrap"), memory
    if ctx.failed(A.WriteInitialize):
        return None, memory  # handled by _data_dir below (lost the initialize race)
    return None, replace(memory, bootstrapping=False)


# ---- D ------------------------------------------------------------------------
def clone_source(ctx: Ctx) -> Tuple[Optional[Member], Optional[Member]]:
    """(source, leader) for a clone: a member tagged clonefrom, else the leader (core.methods)."""
    leader = ctx.leader_member()
    return clone_member(ctx.cluster, ctx.me, leader), leader


def _data_dir(ctx: Ctx, memory: Memory) -> Tuple[Optional[Decision], Memory]:
    local, cluster = ctx.local, ctx.cluster
    if local.data_dir == DATA_INACCESSIBLE:
        if ctx.i_am_leader:
            release = A.ReleaseLock(version=cluster.leader.version if cluster.leader else None)
            return ctx.out(roles.DATA_INACCESSIBLE_HOLDER, [release], memory), memory
        return ctx.out(roles.DATA_INACCESSIBLE, [], memory, error=local.data_dir_error or "unknown error"), memory
    if local.data_dir != DATA_EMPTY:
        return None, memory
    if ctx.i_am_leader:
        release = A.ReleaseLock(version=cluster.leader.version if cluster.leader else None)
        return ctx.out(roles.DATA_EMPTY_HOLDER, [release], memory), memory
    if cluster.paused:
        return ctx.out(roles.EMPTY_PAUSED, [], memory), memory
    if ctx.failed(A.WriteInitialize):
        memory = replace(memory, bootstrapping=False)
        return ctx.out(roles.INIT_LOCK_LOST, [], memory), memory
    if ctx.other_leader is not None:
        source, leader = clone_source(ctx)
        assert source is not None and leader is not None
        from_leader = source.name == leader.name
        event = roles.CLONE_FROM_LEADER if from_leader else roles.CLONE_FROM_REPLICA
        memory = replace(memory, rewind_state="idle")
        return ctx.out(event, [A.Clone(source=source, leader=leader)], memory, source=source.name), memory
    standby = ctx.settings.standby
    if cluster.initialize is None and not ctx.settings.nofailover and ctx.settings.has_bootstrap and standby:
        # A standby cluster's first member clones the remote primary (spec 6.1).
        memory = replace(memory, bootstrapping=True)
        clone = A.Clone(source=standby.remote, leader=standby.remote)
        return ctx.out(roles.STANDBY_BOOTSTRAP_START, [A.WriteInitialize("", create=True), clone], memory), memory
    if (cluster.initialize is None and not ctx.settings.nofailover and ctx.settings.has_bootstrap
            and not watchdog_unusable(ctx.obs, ctx.settings)):
        memory = replace(memory, bootstrapping=True)
        acts: List[A.Action] = [A.WriteInitialize("", create=True), A.Bootstrap()]
        return ctx.out(roles.BOOTSTRAP_START, acts, memory), memory
    if ctx.settings.clone_without_leader and cluster.initialize != "":
        # A replica method with no_leader (a backup) works while nobody leads and
        # nobody bootstraps (spec 6.1); the member then races like any replica.
        memory = replace(memory, rewind_state="idle")
        return ctx.out(roles.CLONE_WITHOUT_LEADER, [A.Clone()], memory), memory
    return ctx.out(roles.STANDBY_WAIT if standby else roles.WAIT_FOR_LEADER, [], memory), memory


# ---- I ------------------------------------------------------------------------
def _valid_sysid(value: Optional[str]) -> bool:
    return bool(value) and len(value or "") >= 10 and (value or "").isdigit()


def _identity(ctx: Ctx, memory: Memory) -> Tuple[Tuple[A.Action, ...], Optional[Decision]]:
    """(actions to run before the rest, or a final decision)."""
    local, cluster = ctx.local, ctx.cluster
    if not _valid_sysid(local.sysid):
        return (), ctx.out(roles.SYSID_INVALID, [], memory)
    sysid = local.sysid or ""
    if cluster.has_valid_initialize and cluster.initialize != sysid:
        if cluster.paused:
            acts = [A.ReleaseLock(version=cluster.leader.version)] if ctx.i_am_leader and cluster.leader else []
            return (), ctx.out(roles.SYSID_MISMATCH_PAUSED, acts, memory)
        message = (
            f"system ID mismatch, node {ctx.me} belongs to a different cluster: {cluster.initialize} != {sysid}"
        )
        return (), ctx.out(roles.SYSID_MISMATCH, [A.Fatal(message)], memory, cluster=cluster.initialize, mine=sysid)
    if cluster.has_valid_initialize or cluster.paused:
        return (), None
    if not (cluster.is_unlocked or ctx.i_am_leader):
        return (), None
    # Adopt the running/existing cluster: publish my system identifier.
    write = A.WriteInitialize(
        sysid,
        create=cluster.initialize is None,
        version=cluster.initialize_version if cluster.initialize is not None else None,
    )
    if ctx.failed(A.WriteInitialize):
        return (), None
    return (write,), None
