"""After a crash.

Is a failover possible? The lock holder's question when its primary crashed with
primary_start_timeout 0, or did not start within primary_start_timeout (spec 5.9).
Pure: the peers' answers come in the observation (the core asks for them with
ProbePeers). The per-member test is switchover.eligible, shared with the manual
failover path: reachable, not nofailover, WAL within maximum_lag_on_failover,
timeline with check_timeline; in synchronous mode only /sync standbys count.

What a finished CrashRecovery task leaves behind (`crash_recovery_finished`): a
single-user recovery that ran and failed leaves the member stopped until a DBA acts
(`crash_failed`); a task that failed before it could run one (the shell tripped: a
postmaster that exited under it, a transient I/O error) is tried again after
loop_wait, at most CRASH_RECOVERY_ATTEMPTS times in a row.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Tuple

from .local import CRASH_RECOVERY_RAN_ERROR, TaskStatus
from .model import ClusterView
from .observation import Memory, PeerStatus, Settings
from .switchover import eligible
from .syncrep import sync_members


def failover_candidates(cluster: ClusterView, settings: Settings) -> Tuple[str, ...]:
    """The members that could take over, to be asked for their status."""
    allowed = set(sync_members(cluster.sync)) if settings.synchronous_mode else None
    return tuple(sorted(
        m.name for m in cluster.members
        if m.name != settings.name and m.api_url and not m.nofailover and (allowed is None or m.name in allowed)
    ))


def failover_possible(cluster: ClusterView, settings: Settings,
                      peers: Mapping[str, Optional[PeerStatus]]) -> bool:
    """Some candidate answered and is eligible to take over."""
    return any(eligible(peers.get(name), cluster, settings) for name in failover_candidates(cluster, settings))


CRASH_RECOVERY_ATTEMPTS = 3


def crash_recovery_finished(task: TaskStatus, memory: Memory, now: float, settings: Settings) -> Memory:
    """The memory after a CrashRecovery task ended (see the module's docstring)."""
    if task.ok:
        return replace(memory, rewind_state="check", crash_attempts=0, crash_retry_at=None)
    ran = CRASH_RECOVERY_RAN_ERROR in (task.error or "")
    attempts = memory.crash_attempts + 1
    if ran or attempts >= CRASH_RECOVERY_ATTEMPTS:
        return replace(memory, rewind_state="crash_failed", crash_attempts=0, crash_retry_at=None)
    return replace(memory, rewind_state="check", crash_attempts=attempts, crash_retry_at=now + settings.loop_wait)
