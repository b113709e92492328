"""Typed actions the decision core asks the shell to perform.

The executor performs a decision's actions in order and stops at the first
failure, so `[AcquireLock(), Promote()]` can never promote after losing the
compare-and-swap.  Actions marked "task" start the single background task; their
outcome comes back in a later observation as `LocalState`/`TaskStatus`.
Probe actions ask the shell to gather more facts and decide again in the same
cycle (bounded); they never change anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping, Optional, Tuple, Union

from .local import TaskKind
from .model import Member
from .slots import SlotSpec

# ---- DCS writes -------------------------------------------------------------


@dataclass(frozen=True)
class AcquireLock:
    """Create the leader key with my name, only if absent (atomic)."""


@dataclass(frozen=True)
class RenewLock:
    """Refresh the leader key I own (CAS on the version read this cycle);
    also publishes /status optime = `last_lsn` when given."""

    version: Optional[int] = None
    last_lsn: Optional[int] = None
    # /status slots: positions of the permanent slots on this primary (core.slots).
    slots: Optional[Tuple[Tuple[str, int], ...]] = None


@dataclass(frozen=True)
class TakeLock:
    """Unconditionally write the leader key (only right after our own bootstrap)."""


@dataclass(frozen=True)
class ReleaseLock:
    """Delete the leader key if still mine (CAS on `version`; None = by name);
    `last_lsn` goes to /status first.  `stopped_position`: publish instead the
    position of the (just stopped) local server, known only once it stopped - the
    shutdown checkpoint, so the candidate knows it has everything.  `demoted`: the
    server is down and gives up being the primary - its role becomes `demoted` first
    (as 3.0.2's demote), so no member takes it for a live primary."""

    version: Optional[int] = None
    last_lsn: Optional[int] = None
    stopped_position: bool = False
    demoted: bool = False


@dataclass(frozen=True)
class WriteInitialize:
    """`create=True`: create /initialize only if absent (the bootstrap race).
    Otherwise overwrite it (CAS on `version` when given)."""

    value: str
    create: bool = False
    version: Optional[int] = None


@dataclass(frozen=True)
class CancelInitialize:
    """Delete /initialize after a failed bootstrap."""


@dataclass(frozen=True)
class WriteConfig:
    """Write /config (JSON of `data`); CAS on `version` when given."""

    data: Mapping[str, Any]
    version: Optional[int] = None


@dataclass(frozen=True)
class ClearFailover:
    """Reset /failover to `{}` (CAS on `version`)."""

    version: Optional[int] = None


@dataclass(frozen=True)
class WriteHistory:
    """Refresh /history from the local timeline history files (shell reads them),
    keeping the last `keep` lines (max_timelines_history; 0 = all)."""

    keep: int = 0


# offline: the DCS view is unusable, restart following nobody; immediate: stop at once and
# release the lock; immediate-nolock: stop at once, hands off the lock; graceful: clean
# stop for a switchover, then release the lock.
DemoteMode = Literal["offline", "immediate", "immediate-nolock", "graceful"]

# ---- database: immediate ----------------------------------------------------


@dataclass(frozen=True)
class Demote:
    """Stop being a writable primary.

    mode: "offline" (DCS unreachable: fast stop, restart read-only following
    nobody), "immediate" (immediate stop, restart as replica; a ReleaseLock
    follows), "immediate-nolock" (immediate stop, restart as replica of
    `leader`), "graceful" (after StopServer(checkpoint) and ReleaseLock: start
    as a replica).  The restart as a replica happens in the same action so the
    node is read-only afterwards, never writable.  The lock is never touched
    here: releasing it is its own action, after this one.
    """

    mode: DemoteMode
    leader: Optional[Member] = None
    disarm_at_safepoint: bool = False  # see StopServer


@dataclass(frozen=True)
class StopServer:
    """Stop the local server (`mode` fast or immediate); `checkpoint` first (a
    switchover: the shutdown then has little to write).  A primary stops being one:
    the local lease is dropped before the stop.  Fails when it is still running."""

    mode: Literal["fast", "immediate"] = "fast"
    checkpoint: bool = False
    # close the armed watchdog once the server can acknowledge no write (no client
    # backend left), not after the whole stop: WAL senders waiting for an unreachable
    # standby must not get the machine reset (core/fencing.py)
    disarm_at_safepoint: bool = False


@dataclass(frozen=True)
class Follow:
    """Make the (running or stopped) replica follow `leader` (None = nobody):
    rewrite recovery settings, slot name and standby.signal; reload or restart
    as needed; start the server if it is not running."""

    leader: Optional[Member] = None


@dataclass(frozen=True)
class StartReadOnlyLeader:
    """Start a stopped server in recovery without primary_conninfo because I hold
    the lock ("starting as readonly because i had the session lock"); a later
    cycle promotes it."""


@dataclass(frozen=True)
class RemoveDataDir:
    """Stop the server if needed and delete the data directory (a clone follows)."""


# ---- database: background tasks --------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """task: initdb + configs + start + users/database + checkpoint."""

    kind: ClassVar[TaskKind] = TaskKind.BOOTSTRAP


@dataclass(frozen=True)
class Clone:
    """task: base backup from `source` (None = no source available), then follow `leader`."""

    kind: ClassVar[TaskKind] = TaskKind.CLONE

    source: Optional[Member] = None
    leader: Optional[Member] = None


@dataclass(frozen=True)
class Promote:
    """task: promote the local replica and wait until it is writable.  The physical
    `slots` of the members are created first (we hold the lock by then), so the
    replicas that re-point at once find theirs instead of retrying seconds later."""

    kind: ClassVar[TaskKind] = TaskKind.PROMOTE

    slots: Tuple[str, ...] = ()


@dataclass(frozen=True)
class CrashRecovery:
    """task: single-user crash recovery of a stopped server that did not shut down
    cleanly, so that its control data says where its WAL ends (before a rewind check)."""

    kind: ClassVar[TaskKind] = TaskKind.CRASH_RECOVERY


@dataclass(frozen=True)
class Rewind:
    """task: stop, checkpoint on the leader, rewind from `leader`, then follow it."""

    kind: ClassVar[TaskKind] = TaskKind.REWIND

    leader: Member = field(default_factory=lambda: Member(name=""))


@dataclass(frozen=True)
class Restart:
    """task: restart the server (operator command `ident`; fast stop, start with `timeout`)."""

    kind: ClassVar[TaskKind] = TaskKind.RESTART

    ident: int = 0
    timeout: Optional[float] = None


@dataclass(frozen=True)
class Reinitialize:
    """task: stop, wipe the data directory and clone again from `source` (a member tagged
    clonefrom; None = the leader), then follow `leader` (operator command `ident`)."""

    kind: ClassVar[TaskKind] = TaskKind.REINITIALIZE

    ident: int = 0
    leader: Optional[Member] = None
    source: Optional[Member] = None


# ---- synchronous replication (spec 5.11) ----------------------------------------


@dataclass(frozen=True)
class WriteSync:
    """Write /sync = {leader, sync_standby} (CAS on `version`; None = create/overwrite)."""

    leader: str
    standbys: Tuple[str, ...] = ()
    version: Optional[int] = None


@dataclass(frozen=True)
class DeleteSync:
    """Delete /sync (CAS on `version`): synchronous mode was switched off."""

    version: Optional[int] = None


@dataclass(frozen=True)
class SetSyncStandbyNames:
    """Set synchronous_standby_names on the local server and reload; None = back
    to the configured value (synchronous mode off or demoted)."""

    value: Optional[str] = None


# ---- operator commands -------------------------------------------------------


@dataclass(frozen=True)
class RejectCommand:
    """Answer the queued operator command `ident` with a refusal (never fails)."""

    ident: int
    message: str


# ---- probes (no side effects; the core is called again with the answer) ----


@dataclass(frozen=True)
class ProbePeers:
    """GET /patroni of these members in parallel (short timeout), answers in
    Observation.peers."""

    names: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeDivergence:
    """Compare the local timeline/LSN with `leader`'s history; answer in
    Observation.divergence."""

    leader: Member = field(default_factory=lambda: Member(name=""))


@dataclass(frozen=True)
class ProbeReplication:
    """Read the local primary's pg_stat_replication and synchronous_standby_names
    (Observation.replication).  With `confirm`: read the WAL position first, then
    wait briefly until these standbys are synchronous and have reached it."""

    confirm: Tuple[str, ...] = ()


# ---- the background task ------------------------------------------------------


@dataclass(frozen=True)
class CancelTask:
    """Cancel the running background task and wait (bounded) until it has ended; its
    result is dropped and the core decides again at once in this cycle (a forced
    reinitialize replaces it).  Fails when the task did not end in time."""


@dataclass(frozen=True)
class PublishNoSync:
    """Publish (`on`) or stop publishing the nosync tag in my member key from this cycle
    on: a synchronous standby about to stop asks the primary to name another one."""

    on: bool = True


@dataclass(frozen=True)
class WakeWalReceiver:
    """A standby that follows the leader has no WAL receiver (its last attempt failed,
    e.g. the new primary had not created its slot yet): wake its startup process, which
    otherwise waits wal_retrieve_retry_interval (5 s by default) before trying again.  A
    reload does it (the startup process ends that wait on SIGHUP); no on_reload callback."""


@dataclass(frozen=True)
class Recheck:
    """Run the next cycle after `seconds` instead of loop_wait (waiting on somebody else)."""

    seconds: float = 0.5


# ---- process ----------------------------------------------------------------


@dataclass(frozen=True)
class Exit:
    """The planned stop (SIGTERM) is complete: the daemon exits with status 0 after this
    cycle (its member key published)."""


@dataclass(frozen=True)
class Fatal:
    """Log `message` at critical level and exit the daemon with status 1."""

    message: str


Action = Union[
    AcquireLock,
    RenewLock,
    TakeLock,
    ReleaseLock,
    WriteInitialize,
    CancelInitialize,
    WriteConfig,
    ClearFailover,
    WriteHistory,
    Demote,
    Follow,
    StartReadOnlyLeader,
    RemoveDataDir,
    Bootstrap,
    Clone,
    Promote,
    Rewind,
    CrashRecovery,
    Restart,
    Reinitialize,
    RejectCommand,
    ProbePeers,
    ProbeDivergence,
    Fatal,
    WriteSync,
    DeleteSync,
    SetSyncStandbyNames,
    ProbeReplication,
    CancelTask,
    StopServer,
    PublishNoSync,
    WakeWalReceiver,
    Recheck,
    Exit,
    "ManageSlots",
    "CopyLogicalSlots",
    "ArmWatchdog",
    "PingWatchdog",
    "DisarmWatchdog",
    "CallFailsafe",
    "FailsafeActive",
    "WriteFailsafe",
    "DeleteFailsafe",
]

TASK_ACTIONS: Tuple[type, ...] = (Bootstrap, Clone, Promote, Rewind, CrashRecovery, Restart, Reinitialize)
PROBE_ACTIONS: Tuple[type, ...] = (ProbePeers, ProbeDivergence, ProbeReplication)


# ---- replication slots (spec 5.16, core.slots) -----------------------------------


@dataclass(frozen=True)
class ManageSlots:
    """Change the local slots as the core decided: drop `drop`, create `create`
    (physical; logical on a primary), advance `advance` ((slot, database, position),
    a replica's copies of the permanent logical slots), force hot_standby_feedback
    on or back to the configured value (`feedback`; None = unchanged) and log the
    configuration `problems`.  A slot the server refuses is logged and retried next
    cycle; the action itself never fails."""

    drop: Tuple[str, ...] = ()
    create: Tuple[SlotSpec, ...] = ()
    advance: Tuple[Tuple[str, str, int], ...] = ()
    feedback: Optional[bool] = None
    problems: Tuple[str, ...] = ()
    # The primary to check copied logical slots against (catalog_xmin of this replica's
    # physical slot there); None = no check.
    readiness_leader: Optional[Member] = None


@dataclass(frozen=True)
class CopyLogicalSlots:
    """task: copy the permanent logical slots `names` from `leader` (their state files),
    which needs a restart of this replica below PostgreSQL 17."""

    kind: ClassVar[TaskKind] = TaskKind.COPY_LOGICAL_SLOTS

    names: Tuple[str, ...] = ()
    leader: Member = field(default_factory=lambda: Member(name=""))


TASK_ACTIONS = TASK_ACTIONS + (CopyLogicalSlots,)


# ---- watchdog (core/fencing.py decides; runtime/watchdog.py performs) --------------


@dataclass(frozen=True)
class ArmWatchdog:
    """Open the watchdog device if needed, set its `timeout` and ping it.  Fails only
    when `required` (watchdog.mode required): the lock write after it is then never sent."""

    timeout: int
    required: bool = False


@dataclass(frozen=True)
class PingWatchdog:
    """Ping the armed watchdog (never fails: a failed ping shows in the next observation)."""


@dataclass(frozen=True)
class DisarmWatchdog:
    """Magic close: the watchdog stops counting (never fails)."""


WATCHDOG_ACTIONS = (ArmWatchdog, PingWatchdog, DisarmWatchdog)


# ---- failsafe_mode (core/failsafe.py) ----------------------------------------------


@dataclass(frozen=True)
class CallFailsafe:
    """probe: POST /failsafe (this leader's name, conn_url, api_url) to every member in
    `members` ((name, api_url) pairs) in parallel, with a short timeout each; answers
    (name -> 200 received) in Observation.failsafe_answers."""

    members: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FailsafeActive:
    """Every member in /failsafe answered: stay the writable primary without the DCS
    until the next cycle (GET /primary 200, GET /patroni failsafe_mode_is_active)."""


@dataclass(frozen=True)
class WriteFailsafe:
    """Write /failsafe = {name: api_url} of every member (skipped when unchanged)."""

    members: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DeleteFailsafe:
    """Delete /failsafe: failsafe_mode was turned off."""


FAILSAFE_ACTIONS = (FailsafeActive, WriteFailsafe, DeleteFailsafe)
PROBE_ACTIONS = PROBE_ACTIONS + (CallFailsafe,)
