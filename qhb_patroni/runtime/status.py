"""The published, read-only status of this node.

The HA loop and the server sampler (runtime/sampler.py) publish `StatusView` snapshots
into a `StatusBoard`; the REST API, metrics and logs read only the latest snapshot.
Reading never blocks on the database or the DCS.

The server's SQL figures are sampled on demand: a reader that finds the sample older
than FRESH_FOR asks for a new one and, for at most WAIT_FOR_SAMPLE, waits for it (an
idle daemon runs no query a second for nobody).  A sample already under way for longer
than that, or a server that did not answer the last sample (hung, SIGSTOPped), is not
waited for: the answer is the last sample, marked stale by the views once it is old
(api/views.py).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..core.model import ClusterView

# A server sample younger than this is answered from at once (the age the old
# once-a-second refresher gave); from ASK_AFTER on a reader asks for the next one
# without waiting, so that steady traffic keeps the sample fresh and never waits.
FRESH_FOR = 1.0
ASK_AFTER = 0.8
WAIT_FOR_SAMPLE = 0.1  # seconds a reader waits for a sample it asked for, at most


@dataclass(frozen=True)
class ServerStatus:
    """The local database as last seen by the sampler or the loop (one cheap SQL query)."""

    state: str = "stopped"  # 2.6 state string
    role: str = "uninitialized"  # internal role when the query fails / not running
    query_ok: bool = False
    in_recovery: Optional[bool] = None
    postmaster_start_time: Optional[str] = None
    server_version: Optional[int] = None
    wal_location: Optional[int] = None  # primary
    received_location: Optional[int] = None  # replica
    replayed_location: Optional[int] = None
    replayed_timestamp: Optional[str] = None
    replay_paused: bool = False
    timeline: Optional[int] = None
    replication: List[Dict[str, Any]] = field(default_factory=list)
    pending_restart: bool = False
    sysid: Optional[str] = None
    postmaster_pid: Optional[int] = None  # of the running server, for the per-request liveness check
    sampled_at: Optional[float] = None  # monotonic time of the query behind these figures


@dataclass(frozen=True)
class WatchdogStatus:
    """The watchdog for GET /patroni: `mode` is watchdog.mode, `error` its last failure."""

    mode: str = "off"
    armed: bool = False
    timeout: Optional[int] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class StatusView:
    name: str
    scope: str
    version: str  # Patroni-compatible version string, "3.0.2"
    api_url: str
    conn_url: str
    server: ServerStatus = field(default_factory=ServerStatus)
    cluster: Optional[ClusterView] = None  # last good DCS view (None if never/expired)
    cluster_read_at: Optional[float] = None  # monotonic time of that read
    dcs_last_seen: int = 0  # epoch seconds of last successful DCS read
    lease_until: Optional[float] = None  # monotonic: I hold the lock until then
    tags: Mapping[str, Any] = field(default_factory=dict)  # effective tags
    ttl: float = 30
    loop_wait: float = 10
    next_cycle_at: Optional[float] = None  # monotonic
    paused: bool = False
    last_reason: str = ""
    # The pending scheduled restart as GET /patroni shows it ({"schedule": iso, ...filters}), None if none.
    scheduled_restart: Optional[Mapping[str, Any]] = None
    watchdog: WatchdogStatus = field(default_factory=WatchdogStatus)
    failsafe_mode: bool = False  # dynamic configuration, as of the last cycle
    failsafe_until: Optional[float] = None  # monotonic: leading in failsafe mode until then
    last_leader: Optional[str] = None  # the leader of the last DCS view that had one

    def failsafe_active(self, now: float) -> bool:
        return self.failsafe_until is not None and now < self.failsafe_until

    def holds_lock(self, now: float) -> bool:
        if self.failsafe_active(now):
            return True  # every member in /failsafe has just agreed that I lead
        return (
            self.lease_until is not None
            and now < self.lease_until
            and self.cluster is not None
            and self.cluster.leader is not None
            and self.cluster.leader.name == self.name
        )

    def dcs_view(self, now: float) -> Optional[ClusterView]:
        """The cached DCS view, valid for ttl seconds after the read."""
        if self.cluster is None or self.cluster_read_at is None:
            return None
        if now > self.cluster_read_at + self.ttl:
            return None
        return self.cluster


class StatusBoard:
    """Holds the latest StatusView; writers replace it atomically, readers copy the reference."""

    def __init__(self, initial: StatusView) -> None:
        self._lock = threading.Lock()
        self._view = initial
        self.sampler_attached = False  # set by the sampler: without one, readers never wait
        self.wanted = threading.Event()  # a reader asked for a server sample (the sampler waits on it)
        self._asked_at: Optional[float] = None  # monotonic: since when a sample is wanted
        self._waiters: List[Callable[[], None]] = []

    def get(self) -> StatusView:
        return self._view  # reference read is atomic in CPython; views are immutable

    def publish_server(self, server: ServerStatus, at: float) -> StatusView:
        """A new sample of the local server, taken at monotonic time `at`; readers
        waiting for one are called back (on this thread)."""
        with self._lock:
            self._view = replace(self._view, server=replace(server, sampled_at=at))
            view = self._view
        self.sample_done()  # asked before this publish: served by it
        return view

    def sample_done(self) -> None:
        """The sample asked for is published, or failed: call the waiting readers back
        (they answer with what the board holds) and let the next reader ask again."""
        with self._lock:
            waiters, self._waiters, self._asked_at = self._waiters, [], None
            self.wanted.clear()
        for notify in waiters:
            notify()

    def wait_for_sample(self, now: float, notify: Callable[[], None]) -> bool:
        """For a reader about to answer at monotonic `now`: False to answer at once, the
        server sample being fresh (or nobody samples, or the sample asked for is overdue).
        True: the sample is older than FRESH_FOR and one has been asked for; `notify()`
        is called once it is published.  The reader must not wait longer than
        WAIT_FOR_SAMPLE for it (the call may never come for a hung server).  A server whose
        last sample found its postmaster alive but not answering is asked again, never
        waited for: a hung database holds no request beyond the first one after a lull."""
        if not self.sampler_attached:
            return False
        sampled_at = self._view.server.sampled_at
        age = float("inf") if sampled_at is None else now - sampled_at
        if age < ASK_AFTER:
            return False
        with self._lock:
            if self._view.server.sampled_at != sampled_at:
                return False  # published meanwhile
            if self._asked_at is None:
                self._asked_at = now
                self.wanted.set()
            if age < FRESH_FOR or now - self._asked_at >= WAIT_FOR_SAMPLE:
                return False
            server = self._view.server
            if server.postmaster_pid is not None and not server.query_ok:
                return False  # it did not answer the last time
            self._waiters.append(notify)
            return True

    def update(self, **changes: Any) -> StatusView:
        with self._lock:
            self._view = replace(self._view, **changes)
            return self._view
