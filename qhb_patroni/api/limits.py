"""How many connections the REST API holds, and which one gives way when it is full.

* The process's descriptor limit (RLIMIT_NOFILE) is raised at start towards
  NOFILE_TARGET (never above the hard limit).
* The connection caps (`restapi.max_connections`, `restapi.max_connections_per_address`)
  are clamped so that RESERVED_DESCRIPTORS descriptors always stay free for the HA loop
  (DCS clients, database connections, peer probes, log files, subprocesses).
* `Admission` decides, per new connection, whether it is taken and which idle connection
  is closed to make room, so a client holding idle connections cannot lock out a fresh
  health check: at the per-address cap, that address's connection idle the longest; at
  the total cap, the connection idle the longest of the address holding the most
  connections (a flooding client gives way before a peer or a load balancer with a
  few). Only when no connection is idle is the new one closed at once.

`Admission` is plain bookkeeping (no sockets, no clock): the listener calls it on its
event loop thread.
"""
from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

log = logging.getLogger(__name__)

NOFILE_TARGET = 65536  # as etcd's unit; a few thousand would do
RESERVED_DESCRIPTORS = 256  # kept free for everything that is not a REST API connection
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_PER_ADDRESS = 100


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    per_address: int = DEFAULT_MAX_PER_ADDRESS


def raise_nofile_limit(target: int = NOFILE_TARGET) -> Tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `target` (at most the hard limit). Returns
    the (soft, hard) limits in force afterwards; a refusal is logged, never raised."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, want, exc)
    return soft, hard


def nofile_limit() -> int:
    """The soft RLIMIT_NOFILE (a large number when unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return NOFILE_TARGET * 16 if soft == resource.RLIM_INFINITY else int(soft)


def descriptor_budget(nofile: int) -> int:
    """Connections a process with `nofile` descriptors may hold and keep the reserve."""
    if nofile > 2 * RESERVED_DESCRIPTORS:
        return nofile - RESERVED_DESCRIPTORS
    return max(1, nofile // 2)  # a tiny limit: half of it, the reserve gets the rest


def connection_limits(restapi: Mapping[str, Any], nofile: int) -> Tuple[ConnectionLimits, Optional[str]]:
    """The caps of a validated `restapi` section under a descriptor limit of `nofile`,
    and a note to log when the configured total had to be lowered (else None)."""
    wanted = int(restapi.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
    per_address = int(restapi.get("max_connections_per_address") or DEFAULT_MAX_PER_ADDRESS)
    budget = descriptor_budget(nofile)
    total = min(wanted, budget)
    note = None
    if total < wanted:
        note = (f"restapi.max_connections {wanted} lowered to {total}: the open files limit is {nofile} "
                f"and {nofile - budget} descriptors are kept for the HA loop (raise LimitNOFILE)")
    return ConnectionLimits(total, min(per_address, total)), note


class Slot:
    """One admitted connection: its client address and how to close it (settable, as
    the connection object arrives after the TLS handshake)."""

    __slots__ = ("address", "evict", "released", "idle_since")

    def __init__(self, address: str, evict: Callable[[], object]) -> None:
        self.address = address
        self.evict = evict
        self.released = False
        self.idle_since = 0  # sequence number of when it last became idle


class Admission:
    """Open connections per client address, and the idle ones in the order they became idle."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.total = 0
        self.per_address: Dict[str, int] = {}
        self._idle_by_address: Dict[str, Dict[Slot, None]] = {}  # insertion-ordered: oldest idle first
        self._idle_count = 0
        self._sequence = 0
        self.evicted = 0  # idle connections closed to make room (for the log)
        self.refused = 0  # new connections closed because nothing was idle

    def admit(self, address: str, evict: Callable[[], object]) -> Optional[Slot]:
        """A slot for a new connection from `address` (idle until `busy()`), or None
        when it must be closed. May evict (close) an idle connection first."""
        victim: Optional[Slot] = None
        if self.per_address.get(address, 0) >= self.limits.per_address:
            victim = next(iter(self._idle_by_address.get(address, ())), None)
            if victim is None:
                self.refused += 1
                return None
        elif self.total >= self.limits.max_connections:
            victim = self._heaviest_idle()
            if victim is None:
                self.refused += 1
                return None
        if victim is not None:
            self.release(victim)
            self.evicted += 1
            victim.evict()
        slot = Slot(address, evict)
        self.total += 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self.idle(slot)
        return slot

    def _heaviest_idle(self) -> Optional[Slot]:
        """The oldest idle connection of the address holding the most connections
        (ties: the one idle the longest). O(addresses with an idle connection)."""
        best: Optional[Slot] = None
        best_key = (0, 0)
        for address, slots in self._idle_by_address.items():
            first = next(iter(slots))
            key = (-self.per_address[address], first.idle_since)
            if best is None or key < best_key:
                best, best_key = first, key
        return best

    def idle(self, slot: Slot) -> None:
        """The connection waits for a request: it may give way to a new one."""
        if slot.released:
            return
        self.busy(slot)
        self._sequence += 1
        slot.idle_since = self._sequence
        self._idle_by_address.setdefault(slot.address, {})[slot] = None
        self._idle_count += 1

    def busy(self, slot: Slot) -> None:
        """The connection has a request in progress (or output pending): it is kept."""
        by_address = self._idle_by_address.get(slot.address)
        if by_address is not None and slot in by_address:
            del by_address[slot]
            self._idle_count -= 1
            if not by_address:
                del self._idle_by_address[slot.address]

    def release(self, slot: Slot) -> None:
        """The connection is gone (idempotent)."""
        if slot.released:
            return
        self.busy(slot)
        slot.released = True
        self.total -= 1
        left = self.per_address[slot.address] - 1
        if left:
            self.per_address[slot.address] = left
        else:
            del self.per_address[slot.address]

    @property
    def idle_count(self) -> int:
        return self._idle_count
