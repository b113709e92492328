"""failsafe_mode and maintenance mode when the DCS cannot be read.

Without the DCS a primary cannot renew its lease, so by default it demotes
(phase F of decide).  Two exceptions, decided here:

* The cluster was paused at the last view that could be read: nothing is
  stopped or demoted (an operator pauses precisely to work on etcd or Consul;
  no other node promotes in pause either).
* failsafe_mode is on and this primary is listed in the /failsafe key of the
  last view: it calls POST /failsafe on every other member listed there
  (`CallFailsafe`, a probe performed by the shell in parallel).  If every one of
  them accepts, it stays the writable primary (`FailsafeActive`) and asks again
  at its next cycle; if any does not, it demotes as usual.  A member accepts only
  while it is not a running primary itself, and then refuses to race for the
  lock for ttl seconds (`race_veto`): nobody else can become writable while the
  primary keeps hearing from all of them.  A member missing from /failsafe never
  takes part in the race while failsafe_mode is on.

While the DCS works, the leader keeps /failsafe equal to {name: api_url} of every
member (`with_failsafe_key`), and deletes it when failsafe_mode is turned off.
When the DCS comes back, the old leader is the only one allowed to race (the
others accepted its calls less than ttl ago) and takes its lock back.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Tuple

from . import actions as A
from . import roles
from .context import Ctx, arm_rewind_check
from .lease import fence_at, lease_runs
from .local import CRASHED_CONTROLDATA_STATES, DATA_PRESENT, STATE_STOPPED
from .observation import Decision, Memory, Observation, Settings

Pairs = Tuple[Tuple[str, str], ...]


def pairs(failsafe: Optional[Mapping[str, str]]) -> Pairs:
    """A /failsafe value as sorted (name, api_url) pairs (garbage or absent: none)."""
    if not isinstance(failsafe, Mapping):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in failsafe.items()))


def remember(ctx: Ctx, memory: Memory) -> Memory:
    """Keep what a DCS outage needs from the last view that could be read."""
    c = ctx.obs.cluster
    if c is None:
        return memory
    members = pairs(c.failsafe)
    if members != memory.failsafe_members or c.paused != memory.last_paused:
        memory = replace(memory, failsafe_members=members, last_paused=c.paused)
    return memory


def dcs_down(ctx: Ctx, memory: Memory) -> Optional[Decision]:
    """Phase F, before the default (a primary demotes, others wait); None = default."""
    if not ctx.local.is_primary:
        return _fenced(ctx, memory)
    if memory.last_paused:
        return ctx.out(roles.DCS_UNREACHABLE_PAUSED, [], memory)
    if ctx.settings.failsafe_mode and ctx.me in dict(memory.failsafe_members):
        others = tuple((n, u) for n, u in memory.failsafe_members if n != ctx.me)
        answers = ctx.obs.failsafe_answers
        if others and answers is None:
            return ctx.out(roles.FAILSAFE_CALL, [A.CallFailsafe(others)], memory)
        if all((answers or {}).get(name, False) for name, _ in others):
            return ctx.out(roles.FAILSAFE_STAY, [A.FailsafeActive()], memory)
    if lease_runs(ctx.obs.lock_written_at, ctx.obs.now, ctx.settings.ttl):
        # The leader key cannot have expired yet: stay writable; the lease guard of the
        # shell fences the server at fence_at() unless a renewal or failsafe comes first.
        left = (fence_at(ctx.obs.lock_written_at, ctx.settings.ttl) or 0.0) - ctx.obs.now
        return ctx.out(roles.DCS_UNREACHABLE_LEASE, [], memory, seconds=round(left, 1))
    return None


def _fenced(ctx: Ctx, memory: Memory) -> Optional[Decision]:
    """A server stopped cleanly while the DCS is away - typically the primary the lease
    guard fenced - comes back read-only, following nobody, as a demotion would leave it
    (never in pause: nothing is started then)."""
    local = ctx.local
    if (memory.last_paused or ctx.obs.task is not None or local.data_dir != DATA_PRESENT or local.running
            or local.state != STATE_STOPPED or local.controldata_state in CRASHED_CONTROLDATA_STATES):
        return None
    return ctx.out(roles.START_SECONDARY, [A.Follow(None)], arm_rewind_check(ctx, memory))


def race_veto(obs: Observation, settings: Settings) -> Optional[str]:
    """Why failsafe_mode keeps this (non-primary) node out of the leader race, or None."""
    if not settings.failsafe_mode:
        return None
    leader = obs.failsafe_leader
    if leader is not None and leader != settings.name:
        return f"{leader} runs as leader in failsafe mode and called me less than ttl ago"
    failsafe = obs.cluster.failsafe if obs.cluster is not None else None
    if isinstance(failsafe, Mapping) and failsafe and settings.name not in failsafe:
        return "not listed in /failsafe"
    return None


_LEADING = (A.AcquireLock, A.RenewLock, A.TakeLock)
_LETTING_GO = (A.Demote, A.ReleaseLock)


def with_failsafe_key(ctx: Ctx, decision: Decision) -> Decision:
    """The leader keeps /failsafe up to date (appended after its own actions)."""
    acts = decision.actions
    c = ctx.obs.cluster
    if c is None or any(isinstance(a, A.PROBE_ACTIONS) for a in acts):
        return decision
    if not any(isinstance(a, _LEADING) for a in acts) or any(isinstance(a, _LETTING_GO) for a in acts):
        return decision
    if not ctx.settings.failsafe_mode:
        if c.failsafe is not None:
            return replace(decision, actions=acts + (A.DeleteFailsafe(),))
        return decision
    wanted = tuple(sorted((m.name, m.api_url) for m in c.members if m.api_url))
    if ctx.me not in dict(wanted) or wanted == pairs(c.failsafe):
        return decision
    # Until a view shows the key as written, an outage calls everyone listed before or after
    # the write (it may or may not have landed): a member it adds may race once the DCS is back.
    known = tuple(sorted(set(decision.memory.failsafe_members) | set(wanted)))
    return replace(decision, actions=acts + (A.WriteFailsafe(wanted),),
                   memory=replace(decision.memory, failsafe_members=known))
