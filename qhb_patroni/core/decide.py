"""decide(observation, memory, settings) -> Decision: the HA brain, pure.

Ordered phases (spec 5.2, simplified; each returns a Decision or passes on):

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
from .context import Ctx, arm_rewind_check
from .failsafe import dcs_down, remember, with_failsafe_key
from .fencing import refusal, watchdog_unusable, with_watchdog
from .local import DATA_EMPTY, DATA_INACCESSIBLE, DATA_PRESENT
from .model import Member
from .observation import Decision, Memory, Observation, Settings
from .operator import operator_actions
from .running import running_phases


def decide(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    ctx = Ctx.of(obs, settings)
    memory = remember(ctx, _first_cycle(ctx, memory))
    decision = refusal(ctx, memory) or _decide(ctx, memory)
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
    if ctx.obs.cluster is None:
        return dcs_down(ctx, memory) or _dcs_down(ctx, memory)
    if not ctx.obs.commands or (ctx.obs.task is not None and ctx.obs.task.done):
        return _decide_ha(ctx, memory)  # a finished task is dealt with first; commands wait a cycle
    rejects, start = operator_actions(ctx.obs, ctx.settings)
    if start is not None and not ctx.failed(A.RenewLock) and not ctx.failed(type(start)):
        acts: List[A.Action] = [_renew(ctx)] if ctx.i_am_leader else []
        acts += rejects + [start]
        if isinstance(start, A.Reinitialize):
            return ctx.out(roles.OPERATOR_REINITIALIZE, acts, memory, action="reinitialize")
        return ctx.out(roles.OPERATOR_RESTART, acts, memory)
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


# ---- T ------------------------------------------------------------------------
def _renew(ctx: Ctx) -> A.RenewLock:
    lead = ctx.leader
    return A.RenewLock(
        version=lead.version if lead is not None else None,
        last_lsn=ctx.local.lsn if ctx.local.is_primary else None,
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
    if ctx.local.is_primary and task.kind not in ("Promote", "Bootstrap") and not paused:
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
    if task.kind == "Bootstrap" and not task.ok:
        memory = replace(memory, bootstrapping=False)
        acts: List[A.Action] = [A.CancelInitialize(), A.Fatal("Failed to bootstrap cluster")]
        return ctx.out(roles.BOOTSTRAP_FAILED, acts, memory, error=task.error), memory, False
    if task.kind == "Clone" and not task.ok and ctx.local.data_dir != DATA_PRESENT:
        return ctx.out(roles.CLONE_FAILED, [], memory, action=task.name, error=task.error), memory, False
    if task.kind in ("Clone", "Reinitialize") and task.ok:
        memory = replace(memory, rewind_state="idle")  # a fresh copy: no earlier failure applies
    if task.kind == "CrashRecovery":
        return None, replace(memory, rewind_state="check" if task.ok else "crash_failed"), False
    if task.kind == "Rewind":
        if task.ok:
            return None, replace(memory, rewind_state="idle"), False
        s = ctx.settings
        removable = s.remove_data_directory_on_rewind_failure or s.remove_data_directory_on_diverged_timelines
        if removable and not ctx.local.is_primary:
            memory = replace(memory, rewind_state="idle")
            return ctx.out(roles.REWIND_FAILED_REMOVE, [A.RemoveDataDir()], memory), memory, False
        return None, replace(memory, rewind_state="failed"), False
    return None, memory, task.kind == "Promote" and task.ok


# ---- B ------------------------------------------------------------------------
def _bootstrap_done(ctx: Ctx, memory: Memory) -> Tuple[Optional[Decision], Memory]:
    if not memory.bootstrapping:
        return None, memory
    task = ctx.obs.task
    done_ok = task is not None and task.kind == "Bootstrap" and task.done and task.ok
    # The "done" report can be lost to a DCS outage; a running primary that we
    # were bootstrapping is proof enough.
    if done_ok or (task is None and ctx.local.is_primary and ctx.obs.failed is None):
        memory = replace(memory, bootstrapping=False)
        cluster = ctx.cluster
        acts: List[A.Action] = [
            A.WriteInitialize(ctx.local.sysid or "", version=cluster.initialize_version),
            A.WriteConfig(dict(ctx.settings.bootstrap_dcs)),
            A.TakeLock(),
        ]
        return ctx.out(roles.BOOTSTRAP_DONE, acts, memory), memory
    if ctx.failed(A.Bootstrap):
        # We hold the initialize key but could not start the task: give the key back.
        memory = replace(memory, bootstrapping=False)
        return ctx.out(roles.BOOTSTRAP_START_FAILED, [A.CancelInitialize()], memory, action="bootstrap"), memory
    if ctx.failed(A.WriteInitialize):
        return None, memory  # handled by _data_dir below (lost the initialize race)
    return None, replace(memory, bootstrapping=False)


# ---- D ------------------------------------------------------------------------
def clone_source(ctx: Ctx) -> Tuple[Optional[Member], Optional[Member]]:
    """(source, leader) for a clone: the first running member tagged clonefrom
    (by name; never me or the leader), else the leader itself."""
    leader = ctx.leader_member()
    lead_name = leader.name if leader is not None else None
    for m in sorted(ctx.cluster.members, key=lambda m: m.name):
        if m.name in (ctx.me, lead_name) or not m.clonefrom or not m.is_running or not m.conn_url:
            continue
        return m, leader
    return leader, leader


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
    if (cluster.initialize is None and not ctx.settings.nofailover and ctx.settings.has_bootstrap
            and not watchdog_unusable(ctx.obs, ctx.settings)):
        memory = replace(memory, bootstrapping=True)
        acts: List[A.Action] = [A.WriteInitialize("", create=True), A.Bootstrap()]
        return ctx.out(roles.BOOTSTRAP_START, acts, memory), memory
    return ctx.out(roles.WAIT_FOR_LEADER, [], memory), memory


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
