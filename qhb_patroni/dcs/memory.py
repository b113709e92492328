"""Reference in-memory DCS: one `MemoryServer`, one `MemoryStore` client per node.

Semantics follow etcd v2 closely so the same contract suite holds for both:
one store-wide index that grows on every change (including expiry), each key's
version is the index of its last modification, ephemeral keys carry an expiry
time refreshed by re-putting them.  Each client also has its own lease id
(the key's `ephemeral_owner`); `keepalive()` refreshes every ephemeral key the
client owns, which is the etcd v3 / Consul behaviour.

Time comes from an injectable clock (monotonic seconds).  With the default real
clock, `watch` blocks on a Condition until a change or the timeout.  With an
injected (fake) clock nothing can advance time while we block, so `watch` does
not block: it returns True if the key already differs from `version`, else
False at once ("timed out").  Simulations advance the clock and call again.

Partitions: `server.partition(client_id)` makes every call of that client raise
DCSError until `server.heal(client_id)`.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Set

from qhb_patroni.dcs.base import DCSError, Node, Snapshot, WatchEvent

Clock = Callable[[], float]


@dataclass
class _Entry:
    value: str
    version: int
    owner: Optional[str] = None  # lease id of the client that put it ephemerally
    expires_at: Optional[float] = None


WALL_OFFSET = 1_700_000_000.0  # ManualClock.wall() = its monotonic time + this


class ManualClock:
    """A clock that only moves when told to (for tests and simulations)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    # The runtime's Clock port (runtime.ports.Clock): wall time moves with it.
    def monotonic(self) -> float:
        return self()

    def wall(self) -> float:
        return self() + WALL_OFFSET


class MemoryServer:
    """The shared "cluster" all MemoryStore clients talk to. Thread-safe."""

    def __init__(self, clock: Optional[Clock] = None, name: str = "memory") -> None:
        self.fake_clock = clock is not None
        self.clock: Clock = clock if clock is not None else time.monotonic
        self.name = name
        self._cond = threading.Condition()
        self._data: Dict[str, _Entry] = {}
        self._index = 1
        self._partitioned: Set[str] = set()
        self._down = False
        self._ids = itertools.count(1)

    # ---- fault injection ---------------------------------------------------
    def partition(self, client_id: str) -> None:
        with self._cond:
            self._partitioned.add(client_id)

    def heal(self, client_id: str) -> None:
        with self._cond:
            self._partitioned.discard(client_id)

    def set_down(self, down: bool) -> None:
        """Whole server unavailable to every client (an outage)."""
        with self._cond:
            self._down = down

    def client(self, client_id: Optional[str] = None, base: str = "/service/test") -> MemoryStore:
        return MemoryStore(self, base, client_id or f"client-{next(self._ids)}")

    # ---- internals (caller holds self._cond) --------------------------------
    def _check(self, client_id: str) -> None:
        if self._down or client_id in self._partitioned:
            raise DCSError("{} {}: unreachable from {}".format("memory", self.name, client_id))

    def _bump(self) -> int:
        self._index += 1
        return self._index

    def _expire(self) -> None:
        now = self.clock()
        gone = [k for k, e in self._data.items() if e.expires_at is not None and e.expires_at <= now]
        for key in gone:
            del self._data[key]
            self._bump()
        if gone:
            self._cond.notify_all()

    def _next_expiry(self, key: str) -> Optional[float]:
        entry = self._data.get(key)
        return entry.expires_at if entry is not None else None

    @property
    def index(self) -> int:
        with self._cond:
            return self._index


class MemoryStore:
    """One node's client of a MemoryServer (implements dcs.base.Store) over keys
    under `base` (a MemoryServer can hold several clusters)."""

    def __init__(self, server: MemoryServer, base: str, client_id: str, ttl: float = 30.0) -> None:
        self.server = server
        self.last_watch: Optional[WatchEvent] = None  # the answers do not carry the event
        self.base = base.rstrip("/") + "/"
        self.client_id = client_id
        self.lease_id = f"lease-{client_id}"
        self._ttl = float(ttl)
        self._closed = False

    @property
    def endpoint(self) -> str:
        return f"memory {self.server.name}"

    def set_ttl(self, ttl: float) -> None:
        self._ttl = float(ttl)

    def _full(self, key: str) -> str:
        return self.base + key

    def load(self) -> Snapshot:
        s = self.server
        with s._cond:
            s._check(self.client_id)
            s._expire()
            nodes = {
                k[len(self.base):]: Node(e.value, e.version, e.owner)
                for k, e in s._data.items()
                if k.startswith(self.base)
            }
            return Snapshot(nodes=nodes, index=s._index)

    def put(
        self,
        key: str,
        value: str,
        *,
        version: Optional[int] = None,
        create: bool = False,
        ephemeral: bool = False,
    ) -> Optional[int]:
        s = self.server
        full = self._full(key)
        with s._cond:
            s._check(self.client_id)
            s._expire()
            current = s._data.get(full)
            if create and current is not None:
                return None
            if version is not None and (current is None or current.version != version):
                return None
            new_version = s._bump()
            s._data[full] = _Entry(
                value=value,
                version=new_version,
                owner=self.lease_id if ephemeral else None,
                expires_at=s.clock() + self._ttl if ephemeral else None,
            )
            s._cond.notify_all()
            return new_version

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        s = self.server
        full = self._full(key)
        with s._cond:
            s._check(self.client_id)
            s._expire()
            current = s._data.get(full)
            if current is None or (version is not None and current.version != version):
                return False
            del s._data[full]
            s._bump()
            s._cond.notify_all()
            return True

    def delete_tree(self) -> None:
        s = self.server
        with s._cond:
            s._check(self.client_id)
            gone = [k for k in s._data if k.startswith(self.base)]
            for k in gone:
                del s._data[k]
            if gone:
                s._bump()
                s._cond.notify_all()

    def keepalive(self) -> None:
        s = self.server
        with s._cond:
            s._check(self.client_id)
            s._expire()
            deadline = s.clock() + self._ttl
            for entry in s._data.values():
                if entry.owner == self.lease_id:
                    entry.expires_at = deadline

    def _version_of(self, full: str) -> Optional[int]:
        entry = self.server._data.get(full)
        return entry.version if entry is not None else None

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        """True once `key`'s version differs from `version` (appeared, changed,
        deleted, expired).  Fake clock: never blocks (see module doc)."""
        s = self.server
        full = self._full(key)
        deadline = time.monotonic() + max(0.0, timeout)
        with s._cond:
            while True:
                try:
                    s._check(self.client_id)
                except DCSError:
                    # the contract: on a communication error sleep out the time
                    while not s.fake_clock and not self._closed and time.monotonic() < deadline:
                        s._cond.wait(deadline - time.monotonic())
                    return False
                s._expire()
                if self._version_of(full) != version:
                    return True
                remaining = deadline - time.monotonic()
                if s.fake_clock or remaining <= 0 or self._closed:
                    return False
                wait = remaining
                expiry = s._next_expiry(full)
                if expiry is not None:
                    wait = min(wait, max(0.0, expiry - s.clock()) + 0.001)
                s._cond.wait(wait)

    def close(self) -> None:
        """Drop this client's ephemeral keys (a released lease/session) and wake watchers."""
        s = self.server
        with s._cond:
            self._closed = True
            gone = [k for k, e in s._data.items() if e.owner == self.lease_id]
            for k in gone:
                del s._data[k]
                s._bump()
            s._cond.notify_all()
