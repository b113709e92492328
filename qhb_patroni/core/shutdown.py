"""The planned stop (SIGTERM) and the hand-over of synchronous standby duty, decided
like everything else: the shell reports `Observation.stopping` and performs what
comes out (spec 5.15).

Order of a planned stop: wait (briefly) for a running background task; a
synchronous standby publishes nosync and waits until the primary has named another
standby (bounded); then stop the server, release the lock (a primary publishes its
shutdown position first) and Exit.  In pause the server is left running and the lock
kept.  The same hand-over precedes an operator's restart or reinitialize of a
synchronous standby, so commits on the primary never wait for a stopped standby.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from . import actions as A
from . import roles
from .context import Ctx
from .observation import Decision, Memory, Settings

HAND_OVER_POLL = 0.5  # seconds between looks while the primary names another standby
TASK_WAIT = 5.0  # seconds a planned stop waits for a running background task


def hand_over_limit(settings: Settings) -> float:
    """How long a synchronous standby waits for the primary to release it."""
    return min(2.0 * float(settings.loop_wait), 20.0)


def is_sync_standby(ctx: Ctx) -> bool:
    cluster = ctx.obs.cluster
    return (ctx.settings.synchronous_mode and cluster is not None and cluster.sync is not None
            and ctx.me in cluster.sync.sync_standby and not ctx.local.is_primary)


def hand_over(ctx: Ctx, memory: Memory) -> Tuple[Optional[List[A.Action]], Memory, str]:
    """(actions while the hand-over goes on, or None once done; memory; how it ended)."""
    now = ctx.obs.now
    if not is_sync_standby(ctx):
        return None, memory, "released" if memory.sync_withdrawn_at is not None else ""
    if memory.sync_withdrawn_at is None:
        memory = replace(memory, sync_withdrawn_at=now)
        return [A.PublishNoSync(True), A.Recheck(HAND_OVER_POLL)], memory, ""
    if now < memory.sync_withdrawn_at + hand_over_limit(ctx.settings):
        return [A.Recheck(HAND_OVER_POLL)], memory, ""
    return None, memory, "timeout"


HAND_OVER_NOTES = {
    "released": {"note": "No longer a synchronous standby"},
    "timeout": {"alert": "The primary did not release me from synchronous standby duty in time; stopping anyway"},
}


def planned_stop(ctx: Ctx, memory: Memory) -> Decision:
    obs, cluster = ctx.obs, ctx.obs.cluster
    since = memory.stop_requested_at
    if since is None:
        since = obs.now
        memory = replace(memory, stop_requested_at=since)
    if cluster is not None and cluster.paused:
        return ctx.out(roles.SHUTDOWN_PAUSED, [A.Exit()], memory)
    if ctx.failed(A.StopServer):  # the lock stays: it runs out after ttl
        return ctx.out(roles.SHUTDOWN_STOP_FAILED, [A.Exit()], memory)
    task = obs.task
    if task is not None and not task.done and obs.now < since + TASK_WAIT:
        return ctx.out(roles.SHUTDOWN_WAIT_TASK, [A.Recheck(HAND_OVER_POLL)], memory, action=task.name)
    acts, memory, ended = hand_over(ctx, memory)
    if acts is not None:
        return ctx.out(roles.SYNC_HAND_OVER, acts, memory)
    stop: List[A.Action] = [A.StopServer("fast")]
    if ctx.i_am_leader and not ctx.failed(A.ReleaseLock):
        assert cluster is not None and cluster.leader is not None
        if ctx.local.is_primary:  # by name: the shutdown position goes to /status first
            stop.append(A.ReleaseLock(version=None, stopped_position=True))
        else:
            stop.append(A.ReleaseLock(version=cluster.leader.version))
    return ctx.out(roles.SHUTDOWN_STOP, stop + [A.Exit()], memory, **HAND_OVER_NOTES.get(ended, {}))


def end_hand_over(ctx: Ctx, decision: Decision) -> Decision:
    """Stop publishing nosync once what it was published for is over (the restart or
    reinitialize task has ended, or no longer waits to start)."""
    memory = decision.memory
    if memory.sync_withdrawn_at is None or ctx.obs.stopping or decision.event == roles.SYNC_HAND_OVER:
        return decision
    task = ctx.obs.task
    if task is not None and not task.done:
        return decision
    if any(isinstance(a, (A.Restart, A.Reinitialize)) for a in decision.actions):
        return decision  # starts now: nosync stays until it has ended
    return replace(decision, actions=(A.PublishNoSync(False),) + decision.actions,
                   memory=replace(memory, sync_withdrawn_at=None))
