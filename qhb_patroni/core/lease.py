"""The lease rule: when a primary must have stopped accepting writes.

The leader key cannot expire before `ttl` seconds after the last successful
renewal was *sent*: every backend starts its own count when the write (or the
keepalive that follows it) arrives, which is later.  Another node can be promoted
only after the key is gone.  So the primary is safe while

    now < written_at + ttl - margin

where `margin` covers what happens between our deadline and the last write a
client can see acknowledged:

* FENCE_TIME: waking the fencing thread and delivering the stop signal to the
  postmaster, whose backends then abort and exit (milliseconds on an idle
  machine; the rest is headroom for a loaded one);
* CLOCK_RATE x ttl: our monotonic clock and the DCS server's may run at slightly
  different rates (NTP keeps that well below 500 ppm; we allow 1000 ppm).

Within that bound the primary stops as late as possible: a DCS that cannot be
reached does not demote it early (core/failsafe.py, decide phase F); the shell's
lease guard fences it at `fence_at`.  docs/failover-decisions.md has the argument.
"""
from __future__ import annotations

from typing import Optional

FENCE_TIME = 0.5  # seconds
CLOCK_RATE = 0.001  # relative


def fence_margin(ttl: float) -> float:
    return FENCE_TIME + ttl * CLOCK_RATE


def fence_at(lock_written_at: Optional[float], ttl: float) -> Optional[float]:
    """When the primary must have stopped accepting writes; None without a lease."""
    if lock_written_at is None:
        return None
    return lock_written_at + ttl - fence_margin(ttl)


def lease_runs(lock_written_at: Optional[float], now: float, ttl: float) -> bool:
    end = fence_at(lock_written_at, ttl)
    return end is not None and now < end


def status_deadline(ttl: float, loop_wait: float) -> float:
    """Seconds the HA loop waits for the local server's status query before it decides
    without it (the lock holder then renews on what it knew, core/running.py): a quarter
    of what a cycle leaves of the lease, between 0.5 and 2 s (1 s at ttl 5 / loop_wait 1).
    So a stalled server delays a renewal by at most this, never by the connection's own
    timeouts (3 s to connect, 2 s per statement)."""
    return min(2.0, max(0.5, (ttl - loop_wait) / 4.0))
