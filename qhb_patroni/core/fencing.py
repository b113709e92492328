"""The watchdog as decisions: when to arm, ping, retime and disarm it.

A leader that keeps its lock also keeps its watchdog fed: the ping goes out
*before* the lock write of the same cycle, so a daemon that hangs between the two
(or is SIGSTOPped) stops pinging no later than it stops renewing, and the machine
is reset `ttl - safety_margin` seconds after the last ping - before the leader
key, renewed at most at that ping, can expire.

Rules (applied to every decision that the shell executes; probe-only decisions
are not executed and are left alone):

* the decision keeps me leading (it writes the leader key, demotes nothing and
  releases nothing) and the cluster is not paused -> `ArmWatchdog(timeout)`
  before the first lock write when the watchdog is not armed or armed with
  another timeout (ttl changed), else `PingWatchdog`;
* a primary that stays writable on its lease while the DCS cannot be read (not in
  pause) leaves an armed watchdog as it is: not pinged, since nothing was renewed,
  and not closed, since its server still accepts writes (a hang of the daemon now
  stops the lease guard too, and only the watchdog fences it);
* otherwise an armed watchdog is pinged first (a demotion can take a while) and
  disarmed (magic close) after the decision's own actions: after a demotion, a
  release, in pause, when the lock is gone.  A stop or demotion among them closes it
  earlier, as soon as the server can acknowledge no write (`disarm_at_safepoint`):
  a fast shutdown waits for its WAL senders to reach their standbys, up to
  wal_sender_timeout for one that is cut off, and the machine must not be reset
  for that (the fault harness saw it during a switchover with an isolated replica).

`watchdog.mode required`: the arm fails and stops the decision before the lock
write; the next decision (`refusal`) demotes or gives the lock back.  In mode
automatic the arm never fails: the node leads without a watchdog and says so.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Optional, Tuple

from . import actions as A
from . import roles
from .context import Ctx, arm_rewind_check
from .observation import Decision, Memory, Observation, Settings

MODE_OFF, MODE_AUTOMATIC, MODE_REQUIRED = "off", "automatic", "required"
_SPELLINGS = {"off": MODE_OFF, "disable": MODE_OFF, "disabled": MODE_OFF,
              "automatic": MODE_AUTOMATIC, "auto": MODE_AUTOMATIC,
              "required": MODE_REQUIRED, "require": MODE_REQUIRED}

DRIVERS = ("default", "testing")  # watchdog.driver values (runtime/watchdog.py implements them)

_LOCK_WRITES = (A.AcquireLock, A.RenewLock, A.TakeLock, A.FailsafeActive)  # FailsafeActive: leads without
_LETTING_GO = (A.Demote, A.ReleaseLock)
_STOPS = (A.StopServer, A.Demote)


def watchdog_mode(value: Any) -> Optional[str]:
    """`watchdog.mode` as 3.0.2 reads it (YAML false = off, absent = automatic);
    None for a value that is none of the spellings (the caller warns: off)."""
    if value is False:
        return MODE_OFF
    if value is None:
        return MODE_AUTOMATIC
    return _SPELLINGS.get(str(value).lower())


def watchdog_timeout(ttl: float, safety_margin: int) -> int:
    """The device timeout for a leader with this ttl: ttl - safety_margin, or ttl // 2 for -1."""
    if safety_margin == -1:
        return int(ttl // 2)
    return int(ttl - safety_margin)


def keeps_leading(ctx: Ctx, actions: Tuple[A.Action, ...]) -> bool:
    return (any(isinstance(a, _LOCK_WRITES) for a in actions)
            and not any(isinstance(a, _LETTING_GO) for a in actions)
            and not (ctx.obs.cluster is not None and ctx.obs.cluster.paused))


def holds_without_dcs(ctx: Ctx, decision: Decision) -> bool:
    """The primary stays writable on its lease while the DCS cannot be read (not in pause).
    Its lease guard is a thread of the daemon: should the daemon hang now, only the
    watchdog (pinged at the last renewal, before the lock write) stops the writes in time."""
    return ctx.obs.cluster is None and ctx.local.is_primary and not decision.memory.last_paused


def with_watchdog(ctx: Ctx, decision: Decision) -> Decision:
    """Add the watchdog actions to a decision (see the module rules)."""
    acts = decision.actions
    if any(isinstance(a, A.PROBE_ACTIONS) for a in acts):
        return decision
    state, s = ctx.obs.watchdog, ctx.settings
    if s.watchdog_mode != MODE_OFF and keeps_leading(ctx, acts):
        wanted = watchdog_timeout(s.ttl, s.watchdog_safety_margin)
        feed: A.Action
        if state.armed and state.timeout == wanted:
            feed = A.PingWatchdog()
        else:
            feed = A.ArmWatchdog(wanted, required=s.watchdog_mode == MODE_REQUIRED)
        first = next(i for i, a in enumerate(acts) if isinstance(a, _LOCK_WRITES))
        return replace(decision, actions=acts[:first] + (feed,) + acts[first:])
    if state.armed and not acts and holds_without_dcs(ctx, decision):
        return decision  # neither fed (nothing was renewed) nor closed: it fences a hang from here
    if state.armed:  # fed once more, closed as soon as the server can take no write, and after
        stops = tuple(replace(a, disarm_at_safepoint=True) if isinstance(a, _STOPS) else a for a in acts)
        return replace(decision, actions=(A.PingWatchdog(),) + stops + (A.DisarmWatchdog(),))
    return decision


def watchdog_unusable(obs: Observation, settings: Settings) -> bool:
    """watchdog.mode required and the device is known not to work: this node can never
    lead, so it neither bootstraps a new cluster nor races for the lock (3.0.2: 'Watchdog
    device is not usable')."""
    return settings.watchdog_mode == MODE_REQUIRED and obs.watchdog.error is not None and not obs.watchdog.armed


def refusal(ctx: Ctx, memory: Memory) -> Optional[Decision]:
    """The required watchdog could not be armed just now (the lock write after it
    was not sent): a primary demotes, a lock holder gives the lock back, nobody
    promotes.  None when the last action did not fail that way."""
    if not ctx.failed(A.ArmWatchdog):
        return None
    acts: List[A.Action] = []
    lead = ctx.leader
    if ctx.local.is_primary:
        memory = arm_rewind_check(ctx, memory)
        if ctx.i_am_leader and lead is not None:  # stop being writable, then give the lock back
            return ctx.out(roles.WATCHDOG_FAILED_DEMOTE,
                           [A.Demote("immediate"), A.ReleaseLock(version=lead.version)], memory)
        return ctx.out(roles.WATCHDOG_FAILED_DEMOTE, [A.Demote("immediate-nolock")], memory)
    if ctx.i_am_leader and lead is not None:
        acts.append(A.ReleaseLock(version=lead.version))
    return ctx.out(roles.WATCHDOG_FAILED_NOT_PROMOTING, acts, memory)
