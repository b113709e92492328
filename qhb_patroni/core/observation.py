"""Inputs and outputs of `decide()`.

decide(observation, memory, settings) -> Decision(actions, memory, reason)

* `Observation` is built fresh by the shell for every decision.
* `Memory` is the core's own state carried from one decision to the next
  (the shell stores it and hands it back untouched).
* `Settings` is the decision-relevant part of the effective configuration.
* `Reason` is data; `qhb_patroni.messages` renders it to the Patroni log sentence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Tuple

from .actions import Action
from .local import Divergence, LocalState, ReplicationState, TaskStatus
from .model import ClusterView
from .standby import StandbyCluster

# Where a possible timeline divergence stands: idle (nothing to check), check (probe
# before following), needed / done, failed (rewind failed), crash_failed (crash
# recovery before a rewind failed).
RewindState = Literal["idle", "check", "needed", "failed", "crash_failed", "done"]


@dataclass(frozen=True)
class PeerStatus:
    """What a peer answered on GET /patroni (None in Observation.peers = unreachable)."""

    name: str
    role: Optional[str] = None
    state: Optional[str] = None
    in_recovery: bool = True  # False when its xlog has `location` (a primary)
    wal_position: int = 0  # primary: location; replica: max(received, replayed)
    timeline: Optional[int] = None
    nofailover: bool = False
    watchdog_failed: bool = False


@dataclass(frozen=True)
class Settings:
    name: str
    scope: str
    ttl: float = 30
    loop_wait: float = 10
    retry_timeout: float = 10
    maximum_lag_on_failover: int = 1048576
    use_pg_rewind: bool = False
    use_slots: bool = True
    remove_data_directory_on_rewind_failure: bool = False
    remove_data_directory_on_diverged_timelines: bool = False
    nofailover: bool = False
    has_bootstrap: bool = True  # a `bootstrap` section is configured
    bootstrap_dcs: Mapping[str, Any] = field(default_factory=dict)  # written as /config after bootstrap
    primary_start_timeout: float = 300
    check_timeline: bool = False  # exclude failover candidates behind the cluster timeline
    max_timelines_history: int = 0  # lines kept in /history (0 = all)
    # Synchronous replication (dynamic configuration, spec 5.11).
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    synchronous_node_count: int = 1
    maximum_lag_on_syncnode: int = -1
    # Some postgresql.create_replica_methods entry has no_leader (core.methods).
    clone_without_leader: bool = False
    # Dynamic standby_cluster (core.standby); None = a normal cluster.
    standby: Optional[StandbyCluster] = None
    failsafe_mode: bool = False  # dynamic configuration (core/failsafe.py)
    # The watchdog (local `watchdog:` section): off | automatic | required, and the margin
    # subtracted from ttl for its timeout (-1: ttl // 2).  See core/fencing.py.
    watchdog_mode: str = "off"
    watchdog_safety_margin: int = 5


@dataclass(frozen=True)
class WatchdogState:
    """The local watchdog device as the shell last left it."""

    armed: bool = False
    timeout: Optional[int] = None  # seconds it is armed with
    error: Optional[str] = None  # the last failure (one line naming watchdog.device), None = healthy


@dataclass(frozen=True)
class FailedAction:
    """The action that failed in the previous execution of this cycle."""

    action: Action
    error: str = ""


@dataclass(frozen=True)
class Observation:
    now: float  # monotonic seconds
    cluster: Optional[ClusterView]  # None: the DCS could not be read
    local: LocalState
    task: Optional[TaskStatus] = None  # the background task, running or just finished
    # Local lease: the time (monotonic, measured *before* sending) of the last
    # successful write of the leader key by this node, None if never/lost.
    lock_written_at: Optional[float] = None
    # Answers to probes asked in this cycle (absent when not asked).
    peers: Optional[Mapping[str, Optional[PeerStatus]]] = None
    divergence: Optional[Divergence] = None
    failed: Optional[FailedAction] = None  # set when re-deciding after a failure
    dcs_error: Optional[str] = None
    # Wall-clock time (epoch seconds), only needed for a scheduled switchover's
    # `scheduled_at`; None = unknown (a scheduled switchover then waits).
    wall_time: Optional[float] = None
    # Operator commands queued by the REST API (core.operator), oldest first.
    commands: Tuple[Any, ...] = ()
    server_version: Optional[int] = None  # server_version_num of the running server, if known
    # Members streaming from this primary right now (pg_stat_replication application_name),
    # gathered with ProbePeers; None = not known.  A switchover only hands over to one of
    # them: the clean shutdown then delivers every last byte of WAL to it.
    streaming: Optional[Tuple[str, ...]] = None
    # The local primary's replication, gathered with ProbeReplication (sync mode only).
    replication: Optional[ReplicationState] = None
    # HA cycles in a row that ended in an unexpected error (the shell then decides once
    # more with only this, the local state and the lease: no DCS view).
    failed_cycles: int = 0
    # The daemon was asked to stop (SIGTERM): hand over what must be handed over, stop the
    # server, release the lock, then Exit.
    stopping: bool = False
    watchdog: WatchdogState = field(default_factory=WatchdogState)
    # failsafe_mode (core/failsafe.py): the answers to CallFailsafe (name -> accepted;
    # absent when not asked), and the leader whose POST /failsafe this node accepted
    # less than ttl ago (None: nobody).
    failsafe_answers: Optional[Mapping[str, bool]] = None
    failsafe_leader: Optional[str] = None

    def holds_lock(self, settings: Settings) -> bool:
        """My name is in the leader key and my local lease has not run out."""
        c = self.cluster
        return (
            c is not None
            and c.leader is not None
            and c.leader.name == settings.name
            and self.lock_written_at is not None
            and self.now < self.lock_written_at + settings.ttl
        )


@dataclass(frozen=True)
class Memory:
    """Core state carried between decisions (start with Memory())."""

    bootstrapping: bool = False  # I won the initialize race and run the bootstrap
    rewind_state: RewindState = "idle"
    demoted_at: Optional[float] = None
    release_backoff_until: Optional[float] = None
    crash_start_at: Optional[float] = None  # when we started the server after a crash as lock holder
    # CrashRecovery tasks in a row that failed before single-user mode could run, and
    # when the next one may start (core/crash.py).
    crash_attempts: int = 0
    crash_retry_at: Optional[float] = None
    started: bool = False  # a first decision was made (arms the divergence check once after start)
    # (/failover version, now) when a switchover started waiting for its candidate to stream.
    stream_wait_since: Optional[Tuple[Optional[int], float]] = None
    # When I published nosync to hand synchronous standby duty over (before a stop,
    # restart or reinitialize); None = not withdrawing.
    sync_withdrawn_at: Optional[float] = None
    stop_requested_at: Optional[float] = None  # when the planned stop was first seen
    # From the last DCS view that could be read (for when the DCS cannot): the /failsafe
    # key as sorted (name, api_url) pairs, and whether the cluster was paused.
    failsafe_members: Tuple[Tuple[str, str], ...] = ()
    last_paused: bool = False
    # Since when (monotonic) the standby following the leader has had no WAL receiver;
    # None = it has one, or it is no such standby (core/running.py, receiver_nudge).
    receiver_missing_since: Optional[float] = None


@dataclass(frozen=True)
class Reason:
    """Why the core decided what it did; `code` keys the sentence table in
    qhb_patroni.messages, `args` fill it (e.g. {"me": "node0", "leader": "node1"})."""

    code: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    actions: Tuple[Action, ...]
    memory: Memory
    reason: Reason
    # The row of the role table (core.roles) this decision took: the role the core saw
    # and the event it named.  Once the actions have run, the node is in the row's `to`
    # role (the simulation checks it).
    event: str = ""
    role: str = ""
