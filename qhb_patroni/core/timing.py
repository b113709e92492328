"""Lease arithmetic on the monotonic `now` of an observation.

A node may act as the writable primary only while its *local* lease runs:
from the moment it sent its last successful leader-key write until `ttl`
seconds later.  The DCS key itself expires no earlier than that (the server
starts counting when the write arrives), so two nodes can never both have a
running lease for the same key.
"""
from __future__ import annotations

from typing import Optional


def lease_expires_at(lock_written_at: Optional[float], ttl: float) -> Optional[float]:
    """End of the local lease, None when there is none."""
    if lock_written_at is None:
        return None
    return lock_written_at + ttl


def lease_valid(lock_written_at: Optional[float], now: float, ttl: float) -> bool:
    end = lease_expires_at(lock_written_at, ttl)
    return end is not None and now < end


def lease_left(lock_written_at: Optional[float], now: float, ttl: float) -> float:
    """Seconds of lease left (0 when expired or absent)."""
    end = lease_expires_at(lock_written_at, ttl)
    if end is None:
        return 0.0
    return max(0.0, end - now)


def deadline_passed(started_at: Optional[float], timeout: float, now: float) -> bool:
    """True when `timeout` seconds have gone by since `started_at` (never when unknown)."""
    return started_at is not None and now - started_at > timeout


def seconds_until(started_at: Optional[float], timeout: float, now: float) -> int:
    """Whole seconds until `started_at + timeout` (the 'N seconds until timeout' of the logs)."""
    if started_at is None:
        return int(timeout)
    return max(0, int(started_at + timeout - now))
