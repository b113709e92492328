"""What the shell observed about the local database server, as plain data."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Tuple

# Data directory states.
DATA_EMPTY = "empty"  # no global/pg_control, only dot-files / lost+found
DATA_PRESENT = "present"
DATA_INACCESSIBLE = "inaccessible"

# Server state strings (Patroni 3.0.2, spec 2.6), owned by the manager.
STATE_STOPPED = "stopped"
STATE_RUNNING = "running"
STATE_STARTING = "starting"
STATE_STOPPING = "stopping"
STATE_CRASHED = "crashed"
STATE_START_FAILED = "start failed"
STATE_INITIALIZING = "initializing new cluster"
STATE_INITDB_FAILED = "initdb failed"
STATE_CREATING_REPLICA = "creating replica"

# Error of a Promote task whose postgresql.pre_promote (fencing) command failed: the
# lock holder gives the lock up instead of promoting (3.0.2).
PRE_PROMOTE_FAILED_ERROR = "pre-promote script failed"

# Control data states of a cluster that stopped without a shutdown checkpoint.  While a
# postmaster is still alive they only say that it has not finished (or not started) its
# shutdown: a crash is known only once it is gone (LocalState.postmaster_alive False).
CRASHED_CONTROLDATA_STATES = ("in production", "shutting down", "in crash recovery")

# In the error of a CrashRecovery task whose single-user crash recovery ran and failed
# (or left the cluster still not cleanly shut down): the data directory needs a DBA.
# Any other failure of the task (the shell could not get that far) is retried.
CRASH_RECOVERY_RAN_ERROR = "single-user crash recovery failed"


class TaskKind(str, Enum):
    """What the single background task does; each is started by one action class
    (core.actions: `kind` of Bootstrap, Clone, ...), whose name it is."""

    BOOTSTRAP = "Bootstrap"
    CLONE = "Clone"
    PROMOTE = "Promote"
    REWIND = "Rewind"
    CRASH_RECOVERY = "CrashRecovery"
    RESTART = "Restart"
    REINITIALIZE = "Reinitialize"
    COPY_LOGICAL_SLOTS = "CopyLogicalSlots"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskStatus:
    """The single background task (bootstrap, clone, promote, rewind, ...).

    `name` is the Patroni action name used in messages ("bootstrap",
    "bootstrap from leader 'x'", "promote", "running pg_rewind from x", ...).
    `kind` is the action class that started it (TaskKind, equal to its class name).
    `done` False while it runs; when True, `ok` says whether it succeeded and
    `error` carries a one-line reason; `cancelled` that it ended because it was
    cancelled (then never ok).  A finished task is reported exactly once.
    """

    kind: TaskKind
    name: str
    done: bool = False
    ok: bool = False
    error: Optional[str] = None
    cancelled: bool = False


@dataclass(frozen=True)
class Divergence:
    """Result of comparing the local timeline/LSN with the leader's history.

    Filled by the shell only when the core asked for it (ProbeDivergence).
    `needed` None means the check could not be made (leader unreachable...).
    """

    leader: str
    needed: Optional[bool]
    detail: str = ""


@dataclass(frozen=True)
class LocalState:
    data_dir: str = DATA_EMPTY
    data_dir_error: Optional[str] = None
    state: str = STATE_STOPPED  # server state string (2.6)
    role: str = "uninitialized"  # internal role: master/replica/demoted/promoted/uninitialized
    running: bool = False  # postmaster alive and accepting connections
    # A postmaster process exists on the data directory; with running False it does not
    # answer (still starting, shutting down, hung).
    postmaster_alive: bool = False
    in_recovery: Optional[bool] = None  # None when unknown (not running)
    timeline: Optional[int] = None
    lsn: Optional[int] = None  # primary: current WAL LSN; replica: max(receive, replay)
    sysid: Optional[str] = None  # from control data
    controldata_state: Optional[str] = None  # "in production", "shut down", ...
    # Recovery settings currently in effect (replica), to know whether to re-point.
    following: Optional[str] = None  # "host:port" from primary_conninfo, None = nobody
    slot_name: Optional[str] = None  # primary_slot_name in effect
    # Standby: a WAL receiver process runs (pg_stat_wal_receiver has a row); None = unknown.
    wal_receiver: Optional[bool] = None
    pending_restart: bool = False
    rewind_possible: bool = False  # rewind binary usable and wal_log_hints/checksums on
    postmaster_start_time: Optional[str] = None
    slots: Tuple[str, ...] = ()  # names of physical replication slots present on this server
    # Every slot with its details (core.slots decides from these); None = not read.
    slot_details: Optional[Tuple[SlotState, ...]] = None
    feedback_enforced: bool = False  # hot_standby_feedback forced on for permanent logical slots
    # Logical slots copied from the primary and not yet known to be safe after a failover.
    unready_slots: Tuple[str, ...] = ()

    @property
    def is_primary(self) -> bool:
        """Writable primary: running and not in recovery."""
        return self.running and self.in_recovery is False

    @property
    def is_replica(self) -> bool:
        return self.running and self.in_recovery is True


@dataclass(frozen=True)
class ReplicationRow:
    """One walsender of the local primary (a row of pg_stat_replication)."""

    name: str  # application_name (our members use their member name)
    state: str = ""  # streaming, catchup, ...
    sync_state: str = ""  # sync, potential, async, quorum
    write_lsn: int = 0
    flush_lsn: int = 0
    replay_lsn: int = 0


@dataclass(frozen=True)
class ReplicationState:
    """The local primary's synchronous replication, read by the shell when the
    core asked for it (ProbeReplication)."""

    rows: Tuple[ReplicationRow, ...] = ()
    standby_names: str = ""  # synchronous_standby_names in effect
    synchronous_commit: str = "on"
    lsn: int = 0  # the primary's WAL position when read
    # Set when the probe was asked to confirm candidates: the primary's WAL position
    # read first, then the rows read until those candidates reached it (or a timeout).
    confirm_lsn: Optional[int] = None
    error: Optional[str] = None  # could not be read: nothing is changed this cycle

    def row(self, name: str) -> Optional[ReplicationRow]:
        for r in self.rows:
            if r.name == name:
                return r
        return None


@dataclass(frozen=True)
class SlotState:
    """One replication slot present on the local server (pg_replication_slots)."""

    name: str
    type: str = "physical"  # physical | logical
    database: Optional[str] = None
    plugin: Optional[str] = None
    temporary: bool = False
    restart_lsn: Optional[int] = None
    confirmed_flush_lsn: Optional[int] = None
